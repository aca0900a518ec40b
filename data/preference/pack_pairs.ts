// Rows of preference pairs: a pair's chosen and rejected sequences are neighbouring segments of one row
// (segments 2k and 2k+1 of a row are pair k's chosen and rejected answers; the block-diagonal attention keeps
// them apart), so a pair is never split across rows, micro-batches, ranks or steps. Pairs are packed
// first-fit decreasing by their combined length, like SFT examples; without packing each pair is a row.
// The streamed pipeline (stream_pairs.ts) builds the rows; this file keeps what readers of them need.
/** Pairs among rows of preference data: one per two real segments of each row. */
export function countPairs(rows: readonly { taskTypes: readonly string[] }[]): number {
  return rows.reduce((n, r) => n + Math.floor(r.taskTypes.length / 2), 0);
}
