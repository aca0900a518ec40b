// Packing examples into rows of seqLen positions: first-fit decreasing, each row's examples as
// segments with positions restarting, padding only at the row's tail. Examples are packed in windows of
// PACK_WINDOW consecutive examples of the (already shuffled) mix, so packing any number of them needs
// memory for one window only; a window of 64k examples packs as tightly as the whole set would.
import type { Example } from "../examples/example.js";
import { IGNORE_INDEX } from "../../native/js/addon.js";
import { makeRng, shuffleInPlace, subSeed } from "../../spec/rng.js";
import type { Row } from "./row.js";

export const PACK_WINDOW = 1 << 16;

/**
 * Row indices for each example (first-fit decreasing). A max segment tree over row capacities finds
 * the first row with room in O(log n), so 100k examples pack in milliseconds, not the O(n * rows) of a
 * linear scan. Ties in length keep input order, so the result depends only on the input.
 */
export function firstFitDecreasing(lengths: ArrayLike<number>, seqLen: number): { rowOf: Int32Array; rows: number } {
  const n = lengths.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => lengths[b] - lengths[a] || a - b);
  let size = 1;
  while (size < Math.max(1, n)) size *= 2;
  const tree = new Int32Array(2 * size).fill(seqLen); // leaves: remaining room of row i
  const rowOf = new Int32Array(n);
  let rows = 0;
  for (const i of order) {
    const len = lengths[i];
    if (len > seqLen) throw new Error(`example of ${len} positions does not fit seq_len ${seqLen}`);
    let node = 1;
    while (node < size) node = tree[2 * node] >= len ? 2 * node : 2 * node + 1;
    const row = node - size;
    rowOf[i] = row;
    rows = Math.max(rows, row + 1);
    tree[node] -= len;
    for (node >>= 1; node >= 1; node >>= 1) tree[node] = Math.max(tree[2 * node], tree[2 * node + 1]);
  }
  return { rowOf, rows };
}

/** One window's rows, shuffled: `members` lists indices into `lengths` row by row, `starts` where each begins. */
export function packWindow(
  lengths: ArrayLike<number>,
  seqLen: number,
  rng: () => number,
): { starts: Int32Array; members: Int32Array } {
  const n = lengths.length;
  const { rowOf, rows } = firstFitDecreasing(lengths, seqLen);
  const filled = new Int32Array(rows + 1); // members per row, then where each row starts
  for (let i = 0; i < n; i++) filled[rowOf[i] + 1]++;
  for (let r = 0; r < rows; r++) filled[r + 1] += filled[r];
  const packed = new Int32Array(n);
  const next = filled.slice(0, rows);
  for (let i = 0; i < n; i++) packed[next[rowOf[i]]++] = i;
  // Packing sorts by length; shuffled rows keep long and short examples spread over the steps.
  const order = shuffleInPlace(
    Array.from({ length: rows }, (_, r) => r),
    rng,
  );
  const starts = new Int32Array(rows + 1);
  const members = new Int32Array(n);
  order.forEach((r, k) => {
    members.set(packed.subarray(filled[r], filled[r + 1]), starts[k]);
    starts[k + 1] = starts[k] + filled[r + 1] - filled[r];
  });
  return { starts, members };
}

/** The seeded row order of window w of a split (`label`: train or val). */
export function windowRng(seed: number, label: string, window: number): () => number {
  return makeRng(subSeed(seed, `rows:${label}:${window}`));
}

/** One row from its examples, padded to width (padded mode: width = the example's own length). */
export function buildRow(segments: Example[], width: number, padId: number): Row {
  const row: Row = {
    inputIds: new Int32Array(width).fill(padId),
    labels: new Int32Array(width).fill(IGNORE_INDEX),
    positionIds: new Int32Array(width),
    segmentIds: new Int32Array(width),
    taskTypes: [],
  };
  let off = 0;
  segments.forEach((e, s) => {
    const len = e.inputIds.length;
    row.inputIds.set(e.inputIds, off);
    row.labels.set(e.labels, off);
    row.segmentIds.fill(s, off, off + len);
    for (let t = 0; t < len; t++) row.positionIds[off + t] = t;
    row.taskTypes.push(e.taskType);
    off += len;
  });
  // The tail is its own segment, so no real token attends to padding and padding to nothing real.
  row.segmentIds.fill(segments.length, off, width);
  for (let t = off; t < width; t++) row.positionIds[t] = t - off;
  return row;
}
