// Sequence parallelism's layout of a row: cut into 2N equal chunks, rank i of a group of N holds chunks i
// and 2N-1-i. Causal attention gives late chunks more keys than early ones; pairing an early chunk with a
// late one gives every rank the same work.
import { IGNORE_INDEX } from "../../native/js/addon.js";
import type { TokenBatch } from "../../proto/mod.js";

/** The batch width rounded up to a whole number of 2N chunks. */
export function zigzagWidth(seqLen: number, groupSize: number): number {
  const unit = 2 * groupSize;
  return Math.ceil(seqLen / unit) * unit;
}

/**
 * Rank `rank`'s share of every row of `b` in a group of `size`: rows x (2 * chunk) tokens, chunk `rank`
 * then chunk 2N-1-rank, each token with its row's own position id, segment id, label and task. Rows are
 * first padded to a multiple of 2N (padding: its own segment, no targets), which packed rows of a valid
 * seq_len never need.
 */
export function zigzagShare(b: TokenBatch, size: number, rank: number, padId: number): TokenBatch {
  if (!Number.isInteger(size) || size < 1 || !Number.isInteger(rank) || rank < 0 || rank >= size)
    throw new RangeError(`zigzagShare: rank ${rank} outside a group of ${size}`);
  const width = zigzagWidth(b.seq_len, size);
  const chunk = width / (2 * size);
  const local = 2 * chunk;
  const n = b.row_count * local;
  const out: TokenBatch = {
    row_count: b.row_count,
    seq_len: local,
    input_ids: new Int32Array(n),
    labels: new Int32Array(n),
    position_ids: new Int32Array(n),
    segment_ids: new Int32Array(n),
    token_task: new Int32Array(n),
    tasks: b.tasks,
  };
  for (let r = 0; r < b.row_count; r++) {
    const row = r * b.seq_len;
    let padSegment = 0;
    for (let t = 0; t < b.seq_len; t++) padSegment = Math.max(padSegment, b.segment_ids[row + t]! + 1);
    let o = r * local;
    for (const c of [rank, 2 * size - 1 - rank])
      for (let t = c * chunk; t < (c + 1) * chunk; t++, o++) {
        if (t < b.seq_len) {
          out.input_ids[o] = b.input_ids[row + t]!;
          out.labels[o] = b.labels[row + t]!;
          out.position_ids[o] = b.position_ids[row + t]!;
          out.segment_ids[o] = b.segment_ids[row + t]!;
          out.token_task[o] = b.token_task[row + t]!;
        } else {
          out.input_ids[o] = padId;
          out.labels[o] = IGNORE_INDEX;
          out.position_ids[o] = t - b.seq_len;
          out.segment_ids[o] = padSegment;
          out.token_task[o] = -1;
        }
      }
  }
  return out;
}

/** Rank `rank` of a ring of `workers` in groups of `size`: its data-parallel group and its place in it. */
export function sequenceGroupOf(rank: number, size: number): { group: number; groupRank: number } {
  return { group: Math.floor(rank / size), groupRank: rank % size };
}
