// Where a micro-batch's pairs lie: rows of preference data hold pairs as neighbouring segments (2k: the
// chosen answer, 2k+1: the rejected one), so each target position belongs to one side of one pair. The
// per-pair sums of per-position log-probabilities (minus the token losses), and the per-position weights
// that carry a pair loss's derivatives back into the cross-entropy's gradient, both go through this map.
import type { NativeBatch } from "../../native/js/addon.js";

const IGNORE = -100;

export interface PairMap {
  pairs: number;
  /** per position: 2 * pair + side (0 chosen, 1 rejected), or -1 off-target */
  slot: Int32Array;
  /** per pair: its task index (token_task of its chosen answer) */
  task: Int32Array;
  /** per slot: target count */
  tokens: Float64Array;
}

export function mapPairs(batch: NativeBatch, tokenTask: Int32Array): PairMap {
  const n = batch.rows * batch.seqLen;
  const slot = new Int32Array(n).fill(-1);
  const firstPair = new Map<number, number>(); // (row, segment pair) -> pair index
  const tasks: number[] = [];
  for (let i = 0; i < n; i++) {
    if (batch.labels[i] === IGNORE) continue;
    const row = Math.floor(i / batch.seqLen);
    const seg = batch.segmentIds[i]!;
    const key = row * batch.seqLen + (seg >> 1);
    let pair = firstPair.get(key);
    if (pair === undefined) {
      pair = tasks.push(tokenTask[i]!) - 1;
      firstPair.set(key, pair);
    }
    slot[i] = 2 * pair + (seg & 1);
  }
  const tokens = new Float64Array(2 * tasks.length);
  for (let i = 0; i < n; i++) if (slot[i]! >= 0) tokens[slot[i]!]! += 1;
  for (let p = 0; p < tasks.length; p++)
    if (tokens[2 * p] === 0 || tokens[2 * p + 1] === 0)
      throw new Error(`pair ${p} of the batch lacks a ${tokens[2 * p] === 0 ? "chosen" : "rejected"} answer's targets`);
  return { pairs: tasks.length, slot, task: Int32Array.from(tasks), tokens };
}

/** Per slot: the summed log-probability of its answer's targets (a token's log-prob is minus its loss). */
export function slotLogps(map: PairMap, tokenLosses: Float32Array): Float64Array {
  const sums = new Float64Array(2 * map.pairs);
  for (let i = 0; i < map.slot.length; i++) if (map.slot[i]! >= 0) sums[map.slot[i]!]! -= tokenLosses[i]!;
  return sums;
}

/**
 * Per position: minus the loss's derivative by its slot's summed log-probability, so that the gradient of
 * sum_n weight_n * tokenLoss_n is the gradient of the loss (tokenLoss = -log-prob).
 */
export function slotWeights(map: PairMap, dLogp: Float64Array): Float32Array {
  const w = new Float32Array(map.slot.length);
  for (let i = 0; i < map.slot.length; i++) if (map.slot[i]! >= 0) w[i] = -dLogp[map.slot[i]!]!;
  return w;
}
