// A corpus of bad inputs — job specs, data records, model files and wire messages — each refused with its
// own clear error (naming the key, file:line, file or message type), in this process, which keeps running.
import { test } from "node:test";
import assert from "node:assert/strict";
import { closeSync, mkdtempSync, openSync, statSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { encode } from "@msgpack/msgpack";
import { submissionProblems } from "../../coordinator/jobs/intake.js";
import { buildDataset } from "../helpers/in_memory_pipeline.js";
import { formatProblem } from "../../text/records/problems.js";
import { parseSpec } from "../../spec/load.js";
import { readSafetensorsHeader } from "../../hf/safetensors.js";
import { parseHfConfig, readHfConfig } from "../../hf/hf_config.js";
import { initModel, loadModel, saveModel, SINGLE_FILE } from "../../hf/hf_model.js";
import { ADAPTER_WEIGHTS, applyAdapter, loadAdapter } from "../../hf/peft_adapter.js";
import { loadOptimizerState, saveOptimizerState } from "../../worker/optimizer_state.js";
import {
  decodeJobRequest,
  decodeMessage,
  JobCancel,
  JobSubmit,
  OPTIMIZER_FILE,
  WorkerHeartbeat,
  WorkerRegister,
} from "../../proto/mod.js";
import { TINY_BYTE_LLAMA } from "../helpers/tiny_model.js";
import { craftAdapter, tinyBaseParams } from "../helpers/lora_adapters.js";
import { f32Bytes, rawSafetensors } from "../helpers/native_files.js";

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
  test(`bad spec, ${what}: refused naming '${key}'`, async () => {
    const problems = await submissionProblems({ spec: { ...goodSpec, ...change }, base_dir: dir, source: "job.yaml" });
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
    "a dtype safetensors knows but the trainer cannot read",
    () => safetensors("i64.safetensors", JSON.stringify({ w: { dtype: "I64", shape: [1], data_offsets: [0, 8] } }), 8),
    /unsupported dtype I64 for tensor w/,
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

// ---- weights: a model, adapter or checkpoint whose values are NaN or infinite, and other broken model folders

/** A tiny model saved as an HF folder in `dtype`, then edited by `breakIt` (which gets the weights file). */
async function savedModel(dtype: "F32" | "BF16", breakIt: (folder: string, weights: string) => void): Promise<string> {
  const folder = mkdtempSync(path.join(dir, `model-${dtype}-`));
  const config = parseHfConfig(TINY_BYTE_LLAMA, "config.json");
  await saveModel(await initModel(config, 1), config, folder, { dtype });
  breakIt(folder, path.join(folder, SINGLE_FILE));
  return folder;
}

/** Overwrites element `index` of tensor `name` in a safetensors file with `value` (F32, or BF16 bits). */
async function poke(file: string, name: string, index: number, value: number): Promise<void> {
  const t = (await readSafetensorsHeader(file, ["F32", "BF16"])).tensors.get(name)!;
  const bytes = Buffer.alloc(t.dtype === "F32" ? 4 : 2);
  if (t.dtype === "F32") bytes.writeFloatLE(value);
  else bytes.writeUInt16LE(new Uint32Array(Float32Array.of(value).buffer)[0]! >>> 16);
  const fd = openSync(file, "r+");
  writeSync(fd, bytes, 0, bytes.length, t.fileOffset + index * bytes.length);
  closeSync(fd);
}

const UP_PROJ = "model.layers.1.mlp.up_proj.weight";

/** [what, dtype, tensor, index, value, the word the refusal must use] */
const poisonedModels: [string, "F32" | "BF16", string, number, number, string][] = [
  ["a NaN in an fp32 model", "F32", UP_PROJ, 1234, NaN, "NaN"],
  ["an Inf in a bf16 model", "BF16", "model.embed_tokens.weight", 7, Infinity, "Inf"],
  ["a -Inf as the last value of a tensor", "F32", "lm_head.weight", 272 * 32 - 1, -Infinity, "-Inf"],
];

for (const [what, dtype, tensor, index, value, word] of poisonedModels) {
  test(`bad weights, ${what}: refused naming the file, the tensor and the index`, async () => {
    let weights = "";
    const folder = await savedModel(dtype, (_, w) => (weights = w));
    await poke(weights, tensor, index, value);
    await assert.rejects(loadModel(folder), (e: Error) => {
      assert.ok(
        e.message.includes(`${weights}: tensor '${tensor}' contains ${word} at index ${index}`),
        `message: ${e.message}`,
      );
      return true;
    });
  });
}

test("bad weights, a model whose values are all finite loads (the scan refuses only what it should)", async () => {
  const folder = await savedModel("BF16", () => {});
  const { model } = await loadModel(folder);
  assert.ok(model.paramData().every(Number.isFinite));
});

const LORA_A = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
const LORA_B = "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight";

/** A PEFT adapter for the tiny model with `value` at `index` of tensor `name`. */
function poisonedAdapter(name: string, index: number, value: number): string {
  return craftAdapter({
    cfg: TINY_BYTE_LLAMA,
    editTensors: (ts) =>
      ts.map((t) => {
        if (t.name !== name) return t;
        const values = new Float32Array(t.bytes.slice().buffer);
        values[index] = value;
        return { ...t, bytes: f32Bytes(values) };
      }),
  });
}

test("bad weights, a NaN in a PEFT adapter (as serve and generation load it): refused by tensor name", async () => {
  const adapter = poisonedAdapter(LORA_A, 5, NaN);
  const file = path.join(adapter, ADAPTER_WEIGHTS);
  const base = tinyBaseParams(TINY_BYTE_LLAMA);
  await assert.rejects(loadAdapter(adapter, base), (e: Error) =>
    e.message.includes(`${file}: tensor '${LORA_A}' contains NaN at index 5`),
  );
});

test("bad weights, an Inf in an adapter a job continues training: refused by tensor name", async () => {
  const adapter = poisonedAdapter(LORA_B, 3, Infinity);
  const config = parseHfConfig(TINY_BYTE_LLAMA, "config.json");
  const model = await initModel(config, 1);
  await assert.rejects(applyAdapter(model, adapter), (e: Error) =>
    e.message.includes(`${path.join(adapter, ADAPTER_WEIGHTS)}: tensor '${LORA_B}' contains Inf at index 3`),
  );
});

test("bad weights, a NaN in a checkpoint's AdamW state: resuming is refused naming the moment", async () => {
  const config = parseHfConfig(TINY_BYTE_LLAMA, "config.json");
  const model = await initModel(config, 1);
  const checkpoint = mkdtempSync(path.join(dir, "checkpoint-"));
  await saveOptimizerState(model, checkpoint);
  const file = path.join(checkpoint, OPTIMIZER_FILE);
  await poke(file, `${UP_PROJ}.exp_avg_sq`, 99, NaN);
  await assert.rejects(loadOptimizerState(model, checkpoint), (e: Error) =>
    e.message.includes(`${file}: tensor '${UP_PROJ}.exp_avg_sq' contains NaN at index 99`),
  );
});

/** [what, how the saved folder is broken, a pattern of the refusal, which file it must name] */
const brokenModelFolders: [string, (folder: string, weights: string) => void, RegExp, string][] = [
  [
    "weights cut short (a copy that stopped early)",
    (_, w) => truncateSync(w, statSync(w).size - 100),
    /truncated/,
    SINGLE_FILE,
  ],
  [
    "a config whose sizes disagree with the weights",
    (folder) =>
      writeFileSync(path.join(folder, "config.json"), JSON.stringify({ ...TINY_BYTE_LLAMA, intermediate_size: 48 })),
    /tensor model\.layers\.0\.mlp\.\w+_proj\.weight has shape \[\d+,\d+\], expected \[\d+,\d+\]/,
    SINGLE_FILE,
  ],
  [
    "a config with more layers than the weights hold",
    (folder) =>
      writeFileSync(path.join(folder, "config.json"), JSON.stringify({ ...TINY_BYTE_LLAMA, num_hidden_layers: 3 })),
    /missing tensor model\.layers\.2\./,
    SINGLE_FILE,
  ],
  [
    "an integer tensor among the weights",
    (_, w) =>
      writeFileSync(
        w,
        rawSafetensors([{ name: "model.embed_tokens.weight", dtype: "I64", shape: [1], bytes: new Uint8Array(8) }]),
      ),
    /unsupported dtype I64 for tensor model\.embed_tokens\.weight/,
    SINGLE_FILE,
  ],
];

for (const [what, breakIt, message, names] of brokenModelFolders) {
  test(`bad model folder, ${what}: refused naming ${names}`, async () => {
    const folder = await savedModel("F32", breakIt);
    await assert.rejects(loadModel(folder), (e: Error) => {
      assert.match(e.message, message);
      assert.ok(e.message.includes(path.join(folder, names)), `names ${names}: ${e.message}`);
      return true;
    });
  });
}
