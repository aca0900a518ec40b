// A deterministic batch for native binding tests: spread token ids, every fifth target ignored, one segment
// per row.
import type { NativeBatch } from "../../native/js/addon.js";

export function syntheticBatch(rows: number, seqLen: number, vocabSize: number): NativeBatch {
  const n = rows * seqLen;
  const inputIds = new Int32Array(n).map((_, i) => (i * 7919) % vocabSize);
  const labels = new Int32Array(n).map((_, i) => (i % 5 === 0 ? -100 : (i * 104729) % vocabSize));
  const positionIds = new Int32Array(n).map((_, i) => i % seqLen);
  return { rows, seqLen, inputIds, labels, positionIds, segmentIds: new Int32Array(n) };
}
