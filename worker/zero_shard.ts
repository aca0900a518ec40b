// ZeRO-1 on a ring: each rank keeps the AdamW moments of one piece of every gradient bucket, the piece that
// the bucket's reduce-scatter leaves summed on it (ownedSpan). A step then reduce-scatters the buckets,
// forms the global gradient norm from every rank's sum of squares, updates the owned pieces, and
// all-gathers the updated weights bucket by bucket. Checkpoints gather the full moments first.
import type { NativeModel } from "../native/js/addon.js";
import { ownedSpan, ringAllGather, type Transport } from "./allreduce/mod.js";

export type Range = [offset: number, size: number];

/** The pieces of the trainable buffer whose moments rank `rank` of `size` keeps: one per bucket. */
export function zeroShardRanges(buckets: readonly Range[], rank: number, size: number): Range[] {
  const out: Range[] = [];
  for (const [offset, length] of buckets) {
    const { start, end } = ownedSpan(length, rank, size);
    if (end > start) out.push([offset + start, end - start]);
  }
  return out;
}

/**
 * Puts the model's moments on this rank's shard of its current buckets, unless they are there already
 * (setting a shard restarts the moments at zero: done before the first step, after a checkpoint's moments
 * are read into it, or after a switch to LoRA, which restarts the optimizer anyway).
 */
export function applyZeroShard(model: NativeModel, rank: number, size: number): void {
  const want = zeroShardRanges(model.gradBucketRanges(), rank, size);
  const have = model.optimizerShard();
  const same = want.length === have.length && want.every(([o, n], i) => have[i]![0] === o && have[i]![1] === n);
  if (!same) model.setOptimizerShard(want);
}

/** The same double on every rank: sqrt of the sum of each rank's sum of squares, added in rank order. */
export async function globalGradNorm(transport: Transport, ownSumOfSquares: number, tag: string): Promise<number> {
  const n = transport.size;
  const sums = new Float64Array(n);
  // Slot (rank+1) mod n is what ownedSpan gives this rank in a buffer of 2n floats: one double each.
  sums[(transport.rank + 1) % n] = ownSumOfSquares;
  await ringAllGather(transport, new Float32Array(sums.buffer), tag);
  let total = 0;
  for (const s of sums) total += s;
  return Math.sqrt(total);
}

/** Copies every rank's updated piece of each bucket of `weights` to every rank. */
export async function allGatherBuckets(
  transport: Transport,
  weights: Float32Array,
  buckets: readonly Range[],
  tagOf: (bucket: number) => string,
): Promise<void> {
  await Promise.all(buckets.map(([o, n], i) => ringAllGather(transport, weights.subarray(o, o + n), tagOf(i))));
}

/**
 * Both moments of every trainable parameter, in the unsharded layout (gradData's offsets), assembled on
 * every rank from each rank's shard: what a checkpoint writes, so it resumes on any worker count.
 */
export async function gatherFullMoments(
  model: NativeModel,
  transport: Transport,
  tagPrefix: string,
): Promise<{ m: Float32Array; v: Float32Array }> {
  const { m: mShard, v: vShard } = model.optimizerData();
  const total = model.gradData().length;
  const full = { m: new Float32Array(total), v: new Float32Array(total) };
  let packed = 0;
  for (const [offset, size] of model.optimizerShard()) {
    full.m.set(mShard.subarray(packed, packed + size), offset);
    full.v.set(vShard.subarray(packed, packed + size), offset);
    packed += size;
  }
  const buckets = model.gradBucketRanges();
  await allGatherBuckets(transport, full.m, buckets, (i) => `${tagPrefix}-m${i}`);
  await allGatherBuckets(transport, full.v, buckets, (i) => `${tagPrefix}-v${i}`);
  return full;
}
