// The memory estimate's arithmetic: parameter counts against published model sizes, what each method
// keeps (no base gradients or moments under LoRA, a bf16 base at half the bytes), hybrid as the larger
// phase, sharding, micro-batch shapes from the spec, and the units people read.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseSpec } from "../../spec/load.js";
import { describeNeed, microBatchShapes } from "../../spec/job_memory.js";
import {
  baseParamCount,
  estimateMemory,
  loraParamCount,
  type EstimateInputs,
  type ModelShape,
} from "../../spec/memory_estimate.js";
import { formatBytes, parseBytes } from "../../spec/byte_units.js";
import { qwenShape } from "../../bench/model_shapes.js";

const ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

// Qwen2.5-0.5B and -7B as their published config.json files describe them.
const QWEN_05B: ModelShape = qwenShape("0.5b");
const QWEN_7B: ModelShape = qwenShape("7b");

const inputs = (over: Partial<EstimateInputs> = {}): EstimateInputs => ({
  method: "full",
  seqLen: 512,
  microBatchRows: [1],
  evaluates: false,
  threads: 4,
  ...over,
});
const lora16 = { rank: 16, targets: ALL, dropout: 0, basePrecision: "bf16" as const };

test("parameter counts equal the published sizes of Qwen2.5-0.5B and Qwen2.5-7B", () => {
  assert.equal(baseParamCount(QWEN_05B), 494_032_768);
  assert.equal(baseParamCount(QWEN_7B), 7_615_616_512);
  // rank 16 on every linear layer of Qwen2.5-0.5B: PEFT reports 8,798,208 trainable parameters
  assert.equal(loraParamCount(QWEN_05B, { rank: 16, targets: ALL }), 8_798_208);
});

test("full training holds fp32 weights, gradients and two moments, and all logits of the micro-batch", () => {
  const e = estimateMemory(QWEN_05B, inputs());
  const P = baseParamCount(QWEN_05B);
  assert.equal(e.params, 4 * P);
  assert.equal(e.grads, 4 * P);
  assert.equal(e.optimizer, 8 * P);
  assert.equal(e.activationParts.head, 512 * QWEN_05B.vocabSize * 4, "(N, V) logits, no chunk buffer");
  assert.equal(e.total, e.params + e.grads + e.optimizer + e.activations);
  const evaluating = estimateMemory(QWEN_05B, inputs({ evaluates: true }));
  assert.equal(evaluating.activationParts.head - e.activationParts.head, 128 * QWEN_05B.vocabSize * 4);
});

test("LoRA keeps no base gradients or moments, and a bf16 base takes half the bytes of fp32", () => {
  const P = baseParamCount(QWEN_05B);
  const A = loraParamCount(QWEN_05B, lora16);
  const bf16 = estimateMemory(QWEN_05B, inputs({ method: "lora", lora: lora16 }));
  const fp32 = estimateMemory(QWEN_05B, inputs({ method: "lora", lora: { ...lora16, basePrecision: "fp32" } }));
  assert.equal(bf16.params, 2 * P + 4 * A);
  assert.equal(fp32.params, 4 * P + 4 * A);
  for (const e of [bf16, fp32]) {
    assert.equal(e.grads, 4 * A);
    assert.equal(e.optimizer, 8 * A);
    assert.equal(e.trainableParams, A);
    // a frozen head runs in chunks of 128 positions: no (N, V) logits
    assert.equal(e.activationParts.head, 128 * QWEN_05B.vocabSize * 4);
  }
  const dropout = estimateMemory(QWEN_05B, inputs({ method: "lora", lora: { ...lora16, dropout: 0.1 } }));
  assert.ok(dropout.activationParts.lora > bf16.activationParts.lora, "dropout keeps the adapters' inputs");
});

test("a hybrid job needs the larger of its phases, and lists both", () => {
  const e = estimateMemory(QWEN_05B, inputs({ method: "hybrid", lora: lora16 }));
  assert.deepEqual(
    e.phases.map((p) => p.phase),
    ["full", "lora"],
  );
  assert.equal(e.total, Math.max(...e.phases.map((p) => p.total)));
  assert.equal(e.phase, "full");
  assert.equal(e.total, estimateMemory(QWEN_05B, inputs()).total);
});

test("activations grow with the micro-batch; a smaller last micro-batch is one more shape", () => {
  const one = estimateMemory(QWEN_05B, inputs({ microBatchRows: [1] }));
  const two = estimateMemory(QWEN_05B, inputs({ microBatchRows: [2] }));
  const attention = one.activationParts.attention;
  assert.equal(two.activations - attention, 2 * (one.activations - attention));
  const both = estimateMemory(QWEN_05B, inputs({ microBatchRows: [2, 1] }));
  assert.equal(both.activations, one.activations + two.activations);
});

test("sharding divides what it shards: ZeRO stages and sequence parallelism", () => {
  const plain = estimateMemory(QWEN_7B, inputs());
  const zero1 = estimateMemory(QWEN_7B, inputs({ sharding: { optimizerShards: 8 } }));
  assert.equal(zero1.optimizer, plain.optimizer / 8);
  assert.equal(zero1.grads, plain.grads);
  const zero3 = estimateMemory(
    QWEN_7B,
    inputs({ sharding: { optimizerShards: 8, gradientShards: 8, parameterShards: 8 } }),
  );
  assert.equal(zero3.params, plain.params / 8);
  const sp = estimateMemory(QWEN_7B, inputs({ seqLen: 4096, sharding: { sequenceShards: 4 } }));
  const spFree = estimateMemory(QWEN_7B, inputs({ seqLen: 1024 }));
  assert.equal(sp.activations, spFree.activations, "a rank of 4 holds a quarter of each 4096-token row");
  assert.throws(() => estimateMemory(QWEN_7B, inputs({ sharding: { optimizerShards: 0 } })), /optimizerShards/);
});

test("a job's micro-batch shapes follow its batch keys and worker count", () => {
  const spec = (over: Record<string, unknown>) =>
    parseSpec({ model: { init: { config: "m.json" } }, data: [{ path: "d.jsonl" }], ...over }, "t.yaml", "/tmp");
  assert.deepEqual(microBatchShapes(spec({ micro_batch_rows: 4 })), [4]);
  assert.deepEqual(microBatchShapes(spec({ micro_batch_rows: 4, global_batch_rows: 6 })), [4, 2]);
  assert.deepEqual(microBatchShapes(spec({ micro_batch_rows: 4, global_batch_rows: 6, workers: 2 })), [3]);
  assert.deepEqual(microBatchShapes(spec({ micro_batch_rows: 2, global_batch_rows: 7, workers: 2 })), [2]);
  assert.deepEqual(microBatchShapes(spec({ micro_batch_rows: 3, global_batch_tokens: 2048, seq_len: 512 })), [3, 1]);
});

test("needs are described in GiB with the parts, and sizes read from flags", () => {
  const e = estimateMemory(QWEN_05B, inputs());
  assert.match(
    describeNeed(e),
    /^\d+\.\d GiB per rank \(params \d+\.\d, grads \d+\.\d, moments \d+\.\d, activations \d+\.\d\)$/,
  );
  // a need under 1 GiB is told in MiB, its parts too, so they add up to the total
  const small = estimateMemory({ ...QWEN_05B, numLayers: 1, vocabSize: 1000 }, inputs());
  const m = /^(\d+\.\d) MiB per rank \(params ([\d.]+), grads ([\d.]+), moments ([\d.]+), activations ([\d.]+)\)$/.exec(
    describeNeed(small),
  );
  assert.ok(m, describeNeed(small));
  const [total, ...parts] = m.slice(1).map(Number);
  assert.ok(Math.abs(parts.reduce((a, b) => a + b, 0) - total!) <= 0.2, describeNeed(small));
  assert.equal(formatBytes(8 * 1024 ** 3), "8.0 GiB");
  assert.equal(formatBytes(640 * 1024 ** 2), "640.0 MiB");
  assert.equal(formatBytes(512), "512 B");
  assert.equal(parseBytes("8GiB", "--memory"), 8 * 1024 ** 3);
  assert.equal(parseBytes("8G", "--memory"), 8 * 1024 ** 3);
  assert.equal(parseBytes("8GB", "--memory"), 8e9);
  assert.equal(parseBytes("1.5MiB", "--memory"), 1.5 * 1024 ** 2);
  assert.equal(parseBytes("4096", "--memory"), 4096);
  assert.throws(() => parseBytes("lots", "--memory"), /--memory: expected a size/);
  assert.throws(() => parseBytes("0GiB", "--memory"), /--memory: the size must be positive/);
});
