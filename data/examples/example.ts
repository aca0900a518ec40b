// A training example: shifted inputs and labels (labels[t] is the token at t+1, or -100), and the
// policy for examples longer than a row.
import { IGNORE_INDEX } from "../../native/js/addon.js";
import type { MaskedTokens } from "./mask.js";

export interface Example {
  inputIds: Int32Array;
  labels: Int32Array;
  taskType: string;
  /** index of the data source it came from (for mixing) */
  sourceIndex: number;
}

/** n tokens give n-1 positions: the last token is only ever a label (`<bos> x -> x </s>`). */
export function shiftLabels(m: MaskedTokens): { inputIds: Int32Array; labels: Int32Array } {
  const n = Math.max(0, m.ids.length - 1);
  const inputIds = new Int32Array(n);
  const labels = new Int32Array(n);
  for (let t = 0; t < n; t++) {
    inputIds[t] = m.ids[t];
    labels[t] = m.targets[t + 1] ? m.ids[t + 1] : IGNORE_INDEX;
  }
  return { inputIds, labels };
}

export type OverlongPolicy = "truncate" | "drop";

export type FitResult =
  | { kind: "fits"; parts: { inputIds: Int32Array; labels: Int32Array }[] }
  | { kind: "truncated" | "split"; parts: { inputIds: Int32Array; labels: Int32Array }[] }
  | { kind: "dropped"; reason: string };

/**
 * SFT: with "truncate", the window of seqLen positions that ends at the last target is kept (the
 * earliest context is cut, the final answer and its end-of-turn stay); an example whose final answer
 * alone does not fit is dropped, since cutting the answer would teach the model to stop mid-way or
 * never. Text: split into consecutive chunks, every token still a target exactly once.
 */
export function fitToRow(
  x: { inputIds: Int32Array; labels: Int32Array },
  seqLen: number,
  isText: boolean,
  policy: OverlongPolicy,
): FitResult {
  const n = x.inputIds.length;
  if (n <= seqLen) return { kind: "fits", parts: [x] };
  if (isText) {
    const parts = [];
    for (let s = 0; s < n; s += seqLen)
      parts.push({ inputIds: x.inputIds.subarray(s, s + seqLen), labels: x.labels.subarray(s, s + seqLen) });
    return { kind: "split", parts };
  }
  if (policy === "drop")
    return { kind: "dropped", reason: `too long: ${n} positions > seq_len ${seqLen} (overlong: drop)` };
  let lastTarget = n - 1;
  while (lastTarget >= 0 && x.labels[lastTarget] === IGNORE_INDEX) lastTarget--;
  let answerStart = lastTarget;
  while (answerStart > 0 && x.labels[answerStart - 1] !== IGNORE_INDEX) answerStart--;
  if (lastTarget < 0 || lastTarget - answerStart + 1 > seqLen) {
    return {
      kind: "dropped",
      reason: `too long: ${n} positions > seq_len ${seqLen} and the final answer alone does not fit`,
    };
  }
  const start = lastTarget + 1 - seqLen;
  return {
    kind: "truncated",
    parts: [{ inputIds: x.inputIds.slice(start, lastTarget + 1), labels: x.labels.slice(start, lastTarget + 1) }],
  };
}
