// What one rank of the ring trains or evaluates on: its data-parallel share of the rows and, under
// sequence parallelism, its zigzag chunks of each row of its group's share.
import type { TokenBatch } from "../../proto/mod.js";
import type { Row } from "../../data/rows/row.js";
import { shardRange } from "../../spec/step_plan.js";
import { tokenBatchOfRows } from "./token_batch.js";
import { sequenceGroupOf, zigzagShare } from "./zigzag.js";

export interface RankBatchOptions {
  ringSize: number;
  /** workers per sequence-parallel group (1: plain data parallelism) */
  sequenceParallel: number;
  padId: number;
  seqLen: number;
}

/** The step's rows, or the validation rows read on demand: whatever gives a range as plain rows. */
type RowRange = { readonly length: number; slice(start?: number, end?: number): Row[] };

export function rankBatch(rows: RowRange, rank: number, o: RankBatchOptions): TokenBatch {
  const sp = o.sequenceParallel;
  if (sp <= 1) {
    const [a, b] = shardRange(rows.length, rank, o.ringSize);
    return tokenBatchOfRows(rows.slice(a, b), o.padId, o.seqLen);
  }
  // Every rank of a group gets the same rows, each its own chunks of them.
  const { group, groupRank } = sequenceGroupOf(rank, sp);
  const [a, b] = shardRange(rows.length, group, o.ringSize / sp);
  return zigzagShare(tokenBatchOfRows(rows.slice(a, b), o.padId, o.seqLen), sp, groupRank, o.padId);
}
