// The memory estimate with activation checkpointing and ZeRO-1 against the native core's own report: a
// model trained one micro-batch with checkpointing on holds what the estimate predicts and reports the
// saving it predicts; a ZeRO-1 rank holds 1/N of the moments, as estimated.
import { test } from "node:test";
import assert from "node:assert/strict";
import os from "node:os";
import { loadAddon, type NativeBatch } from "../../native/js/addon.js";
import { parseHfConfig } from "../../hf/hf_config.js";
import { estimateMemory } from "../../spec/memory_estimate.js";
import { zeroShardRanges } from "../../worker/zero_shard.js";

const threads = Number(process.env.OMP_NUM_THREADS) || os.availableParallelism();
const ROWS = 2;
const SEQ = 128;

const shape = parseHfConfig(
  {
    architectures: ["LlamaForCausalLM"],
    vocab_size: 2048,
    hidden_size: 192,
    intermediate_size: 512,
    num_hidden_layers: 4,
    num_attention_heads: 6,
    num_key_value_heads: 2,
  },
  "config.json",
).native;

function batch(): NativeBatch {
  const n = ROWS * SEQ;
  const inputIds = Int32Array.from({ length: n }, (_, i) => (i * 7919) % shape.vocabSize);
  const labels = Int32Array.from({ length: n }, (_, i) => inputIds[(i + 1) % n]!);
  const positionIds = Int32Array.from({ length: n }, (_, i) => i % SEQ);
  const segmentIds = new Int32Array(n);
  return { rows: ROWS, seqLen: SEQ, inputIds, labels, positionIds, segmentIds };
}

function within(what: string, estimated: number, measured: number, share: number): void {
  const error = Math.abs(estimated - measured) / Math.max(measured, 1);
  assert.ok(error <= share, `${what}: estimated ${estimated}, native ${measured} (${(100 * error).toFixed(1)}%)`);
}

test("activation checkpointing: the estimate matches the native activations and the saving it reports", async () => {
  const common = { method: "full" as const, seqLen: SEQ, microBatchRows: [ROWS], evaluates: false, threads };
  const plain = loadAddon().createModel(shape);
  await plain.forwardBackward(batch(), { backward: true });
  const checkpointed = loadAddon().createModel(shape);
  checkpointed.setActivationCheckpointing(true);
  await checkpointed.forwardBackward(batch(), { backward: true });
  const p = plain.memory();
  const c = checkpointed.memory();
  assert.equal(p.activationsSaved, 0);
  assert.ok(c.activationsSaved > 0 && c.activations < p.activations, "checkpointing keeps less");
  assert.equal(c.activations + c.activationsSaved, p.activations, "the saving is the difference, exactly");
  const estimate = estimateMemory(shape, { ...common, activationCheckpointing: true });
  within("checkpointed activations", estimate.activations, c.activations, 0.1);
  within("saving", estimate.activationParts.checkpointingSaved, c.activationsSaved, 0.1);
  const unchanged = estimateMemory(shape, common);
  within("plain activations", unchanged.activations, p.activations, 0.1);
});

test("ZeRO-1: a rank of N holds 1/N of the AdamW moments (within 5%), as estimated", async () => {
  for (const n of [2, 3, 4]) {
    const model = loadAddon().createModel(shape);
    model.setOptimizerShard(zeroShardRanges(model.gradBucketRanges(), n - 1, n));
    await model.prepareTraining();
    const report = model.memory();
    within(`${n} ranks: moments per rank vs 1/N`, report.optimizer, report.optimizerUnsharded / n, 0.05);
    assert.equal(model.optimizerData().m.length * 4 * 2, report.optimizer, "the moments are allocated per shard");
    const estimate = estimateMemory(shape, {
      method: "full",
      seqLen: SEQ,
      microBatchRows: [ROWS],
      evaluates: false,
      threads,
      sharding: { optimizerShards: n },
    });
    within(`${n} ranks: estimated moments`, estimate.optimizer, report.optimizer, 0.05);
  }
});
