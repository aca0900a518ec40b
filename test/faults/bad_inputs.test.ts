// A corpus of bad inputs — job specs, data records, model files and wire messages — each refused with its
// own clear error (naming the key, file:line, file or message type), in this process, which keeps running.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { encode } from "@msgpack/msgpack";
import { submissionProblems } from "../../coordinator/jobs/intake.js";
import { buildDataset } from "../../coordinator/data/pipeline.js";
import { formatProblem } from "../../coordinator/data/problems.js";
import { parseSpec } from "../../coordinator/job_spec/load.js";
import { readSafetensorsHeader } from "../../native/js/safetensors.js";
import { readHfConfig } from "../../native/js/hf_config.js";
import {
  decodeJobRequest,
  decodeMessage,
  JobCancel,
  JobSubmit,
  WorkerHeartbeat,
  WorkerRegister,
} from "../../proto/mod.js";
import { TINY_BYTE_LLAMA } from "../helpers/tiny_model.js";

const dir = mkdtempSync(path.join(tmpdir(), "ringtune-bad-inputs-"));
writeFileSync(path.join(dir, "model.json"), JSON.stringify(TINY_BYTE_LLAMA));
writeFileSync(path.join(dir, "train.jsonl"), JSON.stringify({ text: "hello" }) + "\n");
const goodSpec = {
  model: { init: { config: "model.json" } },
  tokenizer: "byte",
  template: "chatml",
  data: [{ path: "train.jsonl" }],
  max_steps: 2,
};

/** [what, spec change, the key the refusal must name, a pattern its message must match] */
const badSpecs: [string, Record<string, unknown>, string | null, RegExp][] = [
  ["an unknown key", { learning_rate: 1 }, "learning_rate", /unknown key 'learning_rate'/],
  ["a batch of 300 million rows", { global_batch_rows: 300_000_000 }, "global_batch_rows", /65536/],
  ["a batch of 2^40 tokens", { global_batch_tokens: 2 ** 40 }, "global_batch_tokens", /67108864/],
  ["a billion-token row", { seq_len: 1e9 }, "seq_len", /262144/],
  ["micro-batches of a million rows", { micro_batch_rows: 1e6 }, "micro_batch_rows", /4096/],
  ["a million epochs", { epochs: 1e6 }, "epochs", /1000/],
  ["a hundred thousand workers", { workers: 100_000 }, "workers", /4096/],
  ["100 billion steps", { max_steps: 1e11 }, "max_steps", /10000000/],
  ["zero rows per micro-batch", { micro_batch_rows: 0 }, "micro_batch_rows", /micro_batch_rows/],
  ["a fractional step count", { max_steps: 1.5 }, "max_steps", /expected int/],
  ["seq_len as words", { seq_len: "long" }, "seq_len", /number/],
  ["keep_checkpoints 0", { keep_checkpoints: 0 }, "keep_checkpoints", /keep_checkpoints/],
  ["an unknown schedule", { schedule: "sideways" }, "schedule", /schedule/],
  ["an unknown template", { template: "nope" }, "template", /template/],
  ["an unknown method", { method: "qlora" }, "method", /method/],
  ["a data file that does not exist", { data: [{ path: "missing.jsonl" }] }, "data[0].path", /no such file/],
  [
    "a model config that does not exist",
    { model: { init: { config: "nope.json" } } },
    "model.init.config",
    /no such file/,
  ],
  ["a tokenizer that does not exist", { tokenizer: "nope/tokenizer.json" }, "tokenizer", /no such file/],
  ["a resume_from that does not exist", { resume_from: "ckpt" }, "resume_from", /no such file/],
  ["a negative validation share", { val_size: -1 }, "val_size", /val_size/],
  ["data that is not a list", { data: "train.jsonl" }, "data", /data/],
];

for (const [what, change, key, message] of badSpecs) {
  test(`bad spec, ${what}: refused naming '${key}'`, () => {
    const problems = submissionProblems({ spec: { ...goodSpec, ...change }, base_dir: dir, source: "job.yaml" });
    assert.ok(problems.length > 0, "refused");
    const p = problems.find((q) => q.key === key);
    assert.ok(p, `a problem names ${key}: ${JSON.stringify(problems)}`);
    assert.match(p.message, message);
    assert.match(p.message, /^job\.yaml: /, "the message names the spec");
  });
}

/** [what, the record's line, the reason expected after file:line] */
const badRecords: [string, string, RegExp][] = [
  ["invalid JSON", '{"text": "cut', /invalid JSON/],
  ["no known format", '{"question": "q"}', /cannot detect format/],
  [
    "an unknown role",
    '{"messages": [{"role": "user", "content": "a"}, {"role": "wizard", "content": "b"}]}',
    /unknown role 'wizard'/,
  ],
  ["no final answer", '{"messages": [{"role": "user", "content": "a"}]}', /missing response/],
  [
    "an empty response",
    '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}]}',
    /empty response/,
  ],
  [
    "turns out of order",
    '{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]}',
    /do not alternate/,
  ],
  ["a JSON array where a record belongs", "[1, 2, 3]", /./],
];

test(`bad records: each of ${badRecords.length} is reported as file:line with its own reason`, () => {
  const file = path.join(dir, "bad.jsonl");
  writeFileSync(file, [JSON.stringify({ text: "a good one" }), ...badRecords.map((r) => r[1])].join("\n") + "\n");
  const spec = parseSpec({ ...goodSpec, data: [{ path: "bad.jsonl" }], seq_len: 128 }, "test", dir);
  const d = buildDataset(spec, { quiet: true, useCache: false, displayRoot: dir });
  const lines = d.problems.map(formatProblem);
  badRecords.forEach(([what, , reason], i) => {
    const at = `bad.jsonl:${i + 2}: `;
    const line = lines.find((l) => l.startsWith(at));
    assert.ok(line, `${what}: reported at ${at}: ${lines.join(" | ")}`);
    assert.match(line, reason, what);
  });
});

test("a data file with a byte order mark reads as UTF-8", () => {
  writeFileSync(path.join(dir, "bom.jsonl"), "\ufeff" + JSON.stringify({ text: "hello" }) + "\n");
  const spec = parseSpec({ ...goodSpec, data: [{ path: "bom.jsonl" }], seq_len: 128 }, "test", dir);
  const d = buildDataset(spec, { quiet: true, useCache: false, displayRoot: dir });
  assert.deepEqual(d.problems.map(formatProblem), []);
});

test("a data file that is not UTF-8 is reported with file:line", () => {
  const file = path.join(dir, "latin1.jsonl");
  writeFileSync(file, Buffer.concat([Buffer.from('{"text": "caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]));
  const spec = parseSpec({ ...goodSpec, data: [{ path: "latin1.jsonl" }], seq_len: 128 }, "test", dir);
  const d = buildDataset(spec, { quiet: true, useCache: false, displayRoot: dir });
  const lines = d.problems.map(formatProblem);
  assert.ok(
    lines.some((l) => /^latin1\.jsonl:1: .*UTF-8/i.test(l)),
    lines.join(" | "),
  );
});

function safetensors(name: string, header: Buffer | string, extra = 0, lengthOverride?: bigint): string {
  const h = Buffer.from(header);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(h.length));
  const file = path.join(dir, name);
  writeFileSync(file, Buffer.concat([len, h, Buffer.alloc(extra)]));
  return file;
}

const badModelFiles: [string, () => string, RegExp][] = [
  ["a file shorter than the header length", () => safetensors("short.safetensors", "").slice(0), /./],
  ["an implausible header length", () => safetensors("huge.safetensors", "{}", 0, 2n ** 40n), /not plausible/],
  ["a header running past the end", () => safetensors("past.safetensors", "{}", 0, 1000n), /truncated/],
  ["a header that is not JSON", () => safetensors("nojson.safetensors", "{nope"), /./],
  [
    "an unknown dtype",
    () => safetensors("dtype.safetensors", JSON.stringify({ w: { dtype: "Q4", shape: [1], data_offsets: [0, 4] } }), 4),
    /Q4/,
  ],
  [
    "offsets past the data",
    () =>
      safetensors("offsets.safetensors", JSON.stringify({ w: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }), 4),
    /./,
  ],
  [
    "a shape that disagrees with its bytes",
    () =>
      safetensors("shape.safetensors", JSON.stringify({ w: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }), 8),
    /./,
  ],
];

for (const [what, make, message] of badModelFiles) {
  test(`bad model file, ${what}: refused naming the file`, async () => {
    const file = make();
    await assert.rejects(
      readSafetensorsHeader(file),
      (e: Error) => e.message.includes(file) && message.test(e.message),
    );
  });
}

const badConfigs: [string, string, RegExp][] = [
  ["config.json that is not JSON", "{", /./],
  ["an unknown architecture", JSON.stringify({ ...TINY_BYTE_LLAMA, architectures: ["GPT2LMHeadModel"] }), /GPT2/],
  ["a negative hidden size", JSON.stringify({ ...TINY_BYTE_LLAMA, hidden_size: -4 }), /hidden_size/],
];

for (const [what, text, message] of badConfigs) {
  test(`bad model config, ${what}: refused naming the file`, async () => {
    const file = path.join(dir, `config-${what.replace(/\W+/g, "-")}.json`);
    writeFileSync(file, text);
    await assert.rejects(readHfConfig(file), (e: Error) => e.message.includes(file) && message.test(e.message));
  });
}

const badMessages: [string, () => unknown, RegExp][] = [
  ["a heartbeat that is not msgpack", () => decodeMessage(WorkerHeartbeat, new Uint8Array([0xc1])), /WorkerHeartbeat/],
  [
    "a heartbeat with a string seq",
    () => decodeMessage(WorkerHeartbeat, encode({ v: 1, worker_id: "w", seq: "x" })),
    /WorkerHeartbeat/,
  ],
  [
    "a registration without a device",
    () => decodeMessage(WorkerRegister, encode({ v: 1, worker_id: "w" })),
    /WorkerRegister/,
  ],
  ["a submit that is not JSON", () => decodeJobRequest(JobSubmit, new TextEncoder().encode("{spec"), "json"), /JSON/i],
  [
    "a cancel whose id has a dot",
    () => decodeJobRequest(JobCancel, new TextEncoder().encode('{"id":"a.b"}'), "json"),
    /id/,
  ],
  [
    "a cancel of an unsupported major version",
    () => decodeJobRequest(JobCancel, new TextEncoder().encode('{"id":"a","v":99}'), "json"),
    /version/,
  ],
];

for (const [what, decode, message] of badMessages) {
  test(`bad message, ${what}: refused with an error naming it`, () => {
    assert.throws(decode, (e: Error) => message.test(e.message));
  });
}
