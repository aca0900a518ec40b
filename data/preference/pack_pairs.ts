// Rows of preference pairs: a pair's chosen and rejected sequences are neighbouring segments of one row
// (segments 2k and 2k+1 of a row are pair k's chosen and rejected answers; the block-diagonal attention keeps
// them apart), so a pair is never split across rows, micro-batches, ranks or steps. Pairs are packed
// first-fit decreasing by their combined length, like SFT examples; without packing each pair is a row.
import { buildRow, packWindow, PACK_WINDOW, windowRng } from "../rows/pack.js";
import type { Row } from "../rows/row.js";
import type { PairExample } from "./pair_examples.js";

/** The pairs of each row, rows in training order: packed into seq_len (`packing`), else one pair a row. */
export function pairGroups(
  pairs: PairExample[],
  o: { packing: boolean; seqLen: number; seed: number; label: string },
): PairExample[][] {
  if (!o.packing) return pairs.map((p) => [p]);
  const groups: PairExample[][] = [];
  for (let w = 0; w * PACK_WINDOW < pairs.length; w++) {
    const window = pairs.slice(w * PACK_WINDOW, (w + 1) * PACK_WINDOW);
    const { starts, members } = packWindow(
      window.map((p) => pairLength(p)),
      o.seqLen,
      windowRng(o.seed, `pairs:${o.label}`, w),
    );
    for (let r = 0; r + 1 < starts.length; r++)
      groups.push(Array.from(members.subarray(starts[r], starts[r + 1]), (i) => window[i]!));
  }
  return groups;
}

/** A row's width: seq_len when packed, else as long as its one pair (a batch pads its rows to the longest). */
export function pairRowWidth(group: PairExample[], packing: boolean, seqLen: number): number {
  return packing ? seqLen : group.reduce((n, p) => n + pairLength(p), 0);
}

function pairLength(p: PairExample): number {
  return p.chosen.inputIds.length + p.rejected.inputIds.length;
}

/** A row's segments: each pair's chosen then rejected sequence. */
export function pairRow(pairs: PairExample[], width: number, padId: number): Row {
  return buildRow(
    pairs.flatMap((p) => [p.chosen, p.rejected]),
    width,
    padId,
  );
}

/** Pairs among rows of preference data: one per two real segments of each row. */
export function countPairs(rows: readonly { taskTypes: readonly string[] }[]): number {
  return rows.reduce((n, r) => n + Math.floor(r.taskTypes.length / 2), 0);
}
