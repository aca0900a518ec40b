// Bounds on one record: a record over max_record_bytes (checked while the file is read) or
// max_record_tokens (once templated) is refused with its file:line and the limit's key, the other records
// are trained on, and both pipelines (in memory, and streamed over threads) agree.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildDataset } from "../helpers/in_memory_pipeline.js";
import { formatProblem } from "../../text/records/problems.js";
import { prepareDataset } from "../../data/streamed_pipeline.js";
import { parseSpec } from "../../spec/load.js";

function dir(): string {
  return mkdtempSync(path.join(os.tmpdir(), "ringtune-limits-"));
}

function specFor(d: string, files: string[], extra: Record<string, unknown>) {
  return parseSpec(
    {
      model: { init: { config: "x.json" } },
      tokenizer: "byte",
      data: files.map((f) => ({ path: f })),
      seq_len: 64,
      cache_dir: path.join(d, "cache"),
      ...extra,
    },
    "test",
    d,
  );
}

async function bothPipelines(spec: ReturnType<typeof specFor>, root: string) {
  const memory = buildDataset(spec, { quiet: true, useCache: false, displayRoot: root });
  const streamed = await prepareDataset(spec, {
    quiet: true,
    useCache: false,
    displayRoot: root,
    threads: 2,
    rangeBytes: 64,
  });
  try {
    assert.deepEqual(streamed.problems, memory.problems);
    assert.deepEqual(streamed.stats, memory.stats);
    return { problems: memory.problems.map(formatProblem), stats: memory.stats };
  } finally {
    streamed.close();
  }
}

const BYTES_REFUSAL = "record is larger than max_record_bytes (400 bytes); raise max_record_bytes to read it";

test("a record over max_record_bytes is refused with file:line in JSONL, JSON array and .txt files", async () => {
  const d = dir();
  const small = (i: number) => ({ instruction: `question ${i}?`, output: `answer ${i}` });
  const huge = { instruction: "long?", output: "z".repeat(2000) };
  writeFileSync(path.join(d, "a.jsonl"), [small(1), huge, small(2)].map((r) => JSON.stringify(r)).join("\n") + "\n");
  writeFileSync(path.join(d, "b.json"), JSON.stringify([small(3), small(4), huge], null, 1));
  writeFileSync(path.join(d, "c.txt"), `short text\n${"w ".repeat(1000)}\nanother short text\n`);
  const spec = specFor(
    d,
    ["a.jsonl", "b.json", "c.txt"].map((f) => path.join(d, f)),
    { max_record_bytes: 400 },
  );
  const { problems, stats } = await bothPipelines(spec, d);
  const bJsonHugeLine = 10; // the third element of the indented array starts there
  assert.deepEqual(problems, [
    `a.jsonl:2: ${BYTES_REFUSAL}`,
    `b.json:${bJsonHugeLine}: ${BYTES_REFUSAL}`,
    `c.txt:2: ${BYTES_REFUSAL}`,
  ]);
  assert.equal(stats.dropped.invalid, 3);
  assert.equal(stats.train.examples, 6, "every other record is trained on");
});

test("a record templated into more than max_record_tokens tokens is refused as overlong, naming the key", async () => {
  const d = dir();
  const file = path.join(d, "t.jsonl");
  const records = [
    { instruction: "short?", output: "yes" },
    { instruction: "long?", output: "0123456789".repeat(30) },
    { text: "a text of some length ".repeat(20) },
  ];
  writeFileSync(file, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const { problems, stats } = await bothPipelines(specFor(d, [file], { max_record_tokens: 200 }), d);
  assert.equal(problems.length, 2);
  assert.match(
    problems[0],
    /^t\.jsonl:2: record has \d+ tokens, over max_record_tokens \(200\); raise max_record_tokens/,
  );
  assert.match(problems[1], /^t\.jsonl:3: record has \d+ tokens, over max_record_tokens \(200\)/);
  assert.equal(stats.dropped.overlong, 2);
  assert.equal(stats.train.examples, 1);
  // under the default limit the same records are trained on
  const unlimited = await bothPipelines(specFor(d, [file], { seq_len: 512 }), d);
  assert.deepEqual(unlimited.problems, []);
  assert.equal(unlimited.stats.train.examples, 3);
});

test("limits in the job file are bounded and named when wrong", () => {
  const d = dir();
  const f = path.join(d, "x.jsonl");
  assert.throws(() => specFor(d, [f], { max_record_bytes: 2 ** 40 }), /max_record_bytes/);
  assert.throws(() => specFor(d, [f], { max_record_tokens: 0 }), /max_record_tokens/);
  const defaults = specFor(d, [f], {});
  assert.equal(defaults.max_record_bytes, 32 << 20);
  assert.equal(defaults.max_record_tokens, 1 << 22);
});
