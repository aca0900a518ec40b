// A sequence-parallel job that cannot run is refused before it starts, each refusal naming its keys.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { jobSpecSchema } from "../../spec/job_spec.js";
import { positionRange, positionRangeProblem } from "../../spec/sequence_parallel.js";
import { acceptSubmission, submissionProblems } from "../../coordinator/jobs/intake.js";
import { parseHfConfig } from "../../hf/hf_config.js";
import { TINY_BYTE_LLAMA } from "../helpers/tiny_model.js";

const base = {
  model: { init: { config: "model.json", seed: 1 } },
  tokenizer: "byte",
  data: [{ path: "train.jsonl" }],
};

function issues(spec: Record<string, unknown>): { path: string; message: string }[] {
  const r = jobSpecSchema.safeParse({ ...base, ...spec });
  return r.success ? [] : r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
}

test("sequence_parallel must divide workers: the refusal names both keys", () => {
  const found = issues({ workers: 3, sequence_parallel: 2, seq_len: 64 });
  assert.equal(found.length, 1);
  assert.equal(found[0]!.path, "sequence_parallel");
  assert.match(found[0]!.message, /sequence_parallel \(2\) must divide workers \(3\)/);
  assert.deepEqual(issues({ workers: 4, sequence_parallel: 2, seq_len: 64 }), []);
});

test("seq_len must cut into 2N whole chunks: the refusal names seq_len and sequence_parallel", () => {
  const found = issues({ workers: 4, sequence_parallel: 4, seq_len: 100 });
  assert.equal(found.length, 1);
  assert.equal(found[0]!.path, "seq_len");
  assert.match(found[0]!.message, /seq_len \(100\) must be a multiple of 2 x sequence_parallel \(8\)/);
});

test("sequence_parallel > 1 with transport: nats is refused naming both keys; tcp and SP 1 are accepted", () => {
  const found = issues({ workers: 2, sequence_parallel: 2, seq_len: 64, transport: "nats" });
  assert.equal(found.length, 1);
  assert.equal(found[0]!.path, "transport");
  assert.match(found[0]!.message, /transport: nats cannot carry sequence_parallel \(2\)/);
  assert.deepEqual(issues({ workers: 2, sequence_parallel: 2, seq_len: 64, transport: "tcp" }), []);
  assert.deepEqual(issues({ workers: 2, sequence_parallel: 2, seq_len: 64 }), []);
  assert.deepEqual(issues({ workers: 2, sequence_parallel: 1, seq_len: 64, transport: "nats" }), []);
});

test("seq_len is bounded at 262144 and sequence_parallel is a positive integer", () => {
  assert.deepEqual(issues({ seq_len: 262144, workers: 8, sequence_parallel: 8 }), []);
  const over = issues({ seq_len: 262145 });
  assert.equal(over[0]!.path, "seq_len");
  assert.equal(issues({ sequence_parallel: 0 })[0]!.path, "sequence_parallel");
  assert.equal(issues({ sequence_parallel: 1.5 })[0]!.path, "sequence_parallel");
});

test("seq_len past the model's positions is refused at intake naming seq_len and the config file", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "ringtune-sp-"));
  writeFileSync(path.join(dir, "model.json"), JSON.stringify(TINY_BYTE_LLAMA)); // 256 positions
  writeFileSync(path.join(dir, "train.jsonl"), '{"text": "hello"}\n');
  const req = { spec: { ...base, seq_len: 512 }, base_dir: dir };
  assert.deepEqual(await submissionProblems(req), []);
  await assert.rejects(
    () => acceptSubmission(req),
    (err: Error & { problems?: { key: string | null; message: string }[] }) => {
      assert.equal(err.problems?.[0]?.key, "seq_len");
      assert.match(err.message, /seq_len 512 exceeds the model's max_position_embeddings 256 \(.*model\.json\)/);
      return true;
    },
  );
  await assert.doesNotReject(() => acceptSubmission({ spec: { ...base, seq_len: 256 }, base_dir: dir }));
});

test("a llama3 rope scaling extends the range to factor x original_max_position_embeddings", () => {
  const cfg = parseHfConfig(
    {
      ...TINY_BYTE_LLAMA,
      max_position_embeddings: 8192,
      rope_scaling: {
        rope_type: "llama3",
        factor: 16,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 8192,
      },
    },
    "config.json",
  );
  assert.equal(positionRange(cfg), 131072);
  assert.equal(positionRangeProblem(131072, cfg, "config.json"), undefined);
  assert.match(positionRangeProblem(262144, cfg, "config.json")!, /rope_scaling range 131072 \(config\.json\)/);
});
