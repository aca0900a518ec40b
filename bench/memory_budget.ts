// Memory per worker: the longest row that trains within a fixed per-worker budget, with and without
// activation checkpointing, and ZeRO-1's AdamW memory per rank against the unsharded run.
//
// Longest row (sequence parallelism 1): the row length is searched with the memory estimate (held within
// 10% of the native report by the tests), then measured: one native training step of one row at the found
// length reports what the worker holds, which must be within the budget. Larger sequence-parallel groups
// follow from the estimate's formula (each rank holds seq_len / N positions), marked as such.
// ZeRO-1: for N ranks, the moments one rank allocates for its shard against the unsharded moments; the
// target is 1/N within 5%.
// Run: make bench-memory   (or: node dist/bench/memory_budget.js [--budget-gib 1.5] [--no-measure])
import os from "node:os";
import { loadAddon, type NativeBatch, type NativeModelConfig } from "../native/js/addon.js";
import { estimateMemory } from "../spec/memory_estimate.js";
import { zeroShardRanges } from "../worker/zero_shard.js";
import { nativeLlama } from "../test/helpers/tiny_model.js";

const GiB = 1024 ** 3;

/** The native-core bench model (bench/native/bench_model.h). */
const BENCH_MODEL: NativeModelConfig = nativeLlama({
  vocabSize: 32000,
  hiddenSize: 512,
  intermediateSize: 1408,
  numLayers: 8,
  numHeads: 8,
  numKvHeads: 2,
  headDim: 64,
});

const args = process.argv.slice(2);
const budgetArg = args.indexOf("--budget-gib");
const budget = (budgetArg >= 0 ? Number(args[budgetArg + 1]) : 1.5) * GiB;
if (!(budget > 0)) throw new Error(`--budget-gib must be a positive number, got ${args[budgetArg + 1]}`);
const measure = !args.includes("--no-measure");
const threads = Number(process.env.OMP_NUM_THREADS) || os.availableParallelism();
/** Row lengths are searched in steps of this many tokens. */
const GRAIN = 256;

function estimatedTotal(seqLen: number, checkpointing: boolean, sequenceShards: number): number {
  return estimateMemory(BENCH_MODEL, {
    method: "full",
    seqLen,
    microBatchRows: [1],
    evaluates: false,
    threads,
    activationCheckpointing: checkpointing,
    sharding: { sequenceShards },
  }).total;
}

/** The longest multiple of GRAIN whose estimate fits the budget (0 when not even GRAIN does). */
function longestRow(checkpointing: boolean, sequenceShards: number): number {
  let lo = 0;
  let hi = GRAIN;
  while (estimatedTotal(hi * sequenceShards, checkpointing, sequenceShards) <= budget) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > GRAIN) {
    const mid = Math.floor((lo + hi) / 2 / GRAIN) * GRAIN;
    if (estimatedTotal(mid * sequenceShards, checkpointing, sequenceShards) <= budget) lo = mid;
    else hi = mid;
  }
  return lo * sequenceShards;
}

function oneRow(seqLen: number): NativeBatch {
  const inputIds = Int32Array.from({ length: seqLen }, (_, i) => (i * 7919) % BENCH_MODEL.vocabSize);
  const labels = Int32Array.from({ length: seqLen }, (_, i) => inputIds[(i + 1) % seqLen]!);
  const positionIds = Int32Array.from({ length: seqLen }, (_, i) => i);
  return { rows: 1, seqLen, inputIds, labels, positionIds, segmentIds: new Int32Array(seqLen) };
}

async function measuredStep(seqLen: number, checkpointing: boolean) {
  const model = loadAddon().createModel(BENCH_MODEL);
  model.setActivationCheckpointing(checkpointing);
  const t0 = performance.now();
  await model.forwardBackward(oneRow(seqLen), { backward: true });
  const seconds = (performance.now() - t0) / 1000;
  const m = model.memory();
  return { total: m.total, activations: m.activations, activationsSaved: m.activationsSaved, seconds };
}

const rows = [];
for (const checkpointing of [false, true]) {
  const tokens = longestRow(checkpointing, 1);
  const row: Record<string, unknown> = {
    sequence_parallel: 1,
    activation_checkpointing: checkpointing,
    tokens,
    estimated_bytes: estimatedTotal(tokens, checkpointing, 1),
    source: measure ? "measured" : "estimate",
  };
  if (measure) {
    const m = await measuredStep(tokens, checkpointing);
    Object.assign(row, {
      measured_bytes: m.total,
      measured_activation_bytes: m.activations,
      activations_saved_bytes: m.activationsSaved,
      within_budget: m.total <= budget,
      step_seconds: Number(m.seconds.toFixed(2)),
    });
  }
  rows.push(row);
  console.log(
    `SP 1, activation checkpointing ${checkpointing ? "on " : "off"}: longest row ${tokens} tokens` +
      (measure ? ` (measured ${(Number(row.measured_bytes) / GiB).toFixed(2)} GiB of ${budget / GiB} GiB)` : ""),
  );
}
// Sequence parallelism of N: each rank holds seq_len / N positions (the formula; not measured here).
for (const n of [2, 4, 8])
  for (const checkpointing of [false, true]) {
    const tokens = longestRow(checkpointing, n);
    rows.push({ sequence_parallel: n, activation_checkpointing: checkpointing, tokens, source: "formula" });
    console.log(`SP ${n} (formula), activation checkpointing ${checkpointing ? "on " : "off"}: ${tokens} tokens`);
  }
const plainRow = rows[0]!.tokens as number;
const checkpointedRow = rows[1]!.tokens as number;

const zero = [];
// One model, its shard set for every rank of every ring size in turn: setting a shard reallocates the
// moments at the shard's size and frees the previous ones.
const sharded = loadAddon().createModel(BENCH_MODEL);
await sharded.prepareTraining();
for (const n of [2, 3, 4, 8]) {
  let worst = 0;
  let perRank = 0;
  let unsharded = 0;
  // every rank's shard: the largest one is what a worker must hold
  for (let r = 0; r < n; r++) {
    sharded.setOptimizerShard(zeroShardRanges(sharded.gradBucketRanges(), r, n));
    const m = sharded.memory();
    unsharded = m.optimizerUnsharded;
    perRank = Math.max(perRank, m.optimizer);
    worst = Math.max(worst, Math.abs(m.optimizer / (m.optimizerUnsharded / n) - 1));
  }
  zero.push({
    ranks: n,
    optimizer_bytes_per_rank: perRank,
    unsharded_bytes: unsharded,
    max_deviation_from_1_over_n: worst,
  });
  console.log(
    `ZeRO-1 over ${n} ranks: ${(perRank / 2 ** 20).toFixed(1)} MiB of moments per rank, unsharded ` +
      `${(unsharded / 2 ** 20).toFixed(1)} MiB (1/N within ${(100 * worst).toFixed(3)}%)`,
  );
}

console.log(
  JSON.stringify({
    bench: "memory_budget",
    model: "bench model (vocab 32000, hidden 512, 8 layers, GQA 8/2), full training, fp32",
    budget_bytes: budget,
    threads,
    longest_row: rows,
    checkpointing_row_ratio: plainRow > 0 ? Number((checkpointedRow / plainRow).toFixed(3)) : null,
    zero1: zero,
    zero1_within_5pct: zero.every((z) => z.max_deviation_from_1_over_n <= 0.05),
  }),
);
