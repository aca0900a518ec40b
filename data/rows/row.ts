// The row format used in memory, on the wire and in `--json` output, and its conversion to a batch.
import { IGNORE_INDEX, type NativeBatch } from "../../native/js/addon.js";

export interface Row {
  inputIds: Int32Array;
  /** per-position targets, already shifted; -100 = no loss */
  labels: Int32Array;
  /** restart at 0 for each segment */
  positionIds: Int32Array;
  /** 0, 1, ... per packed example; the tail padding has its own id after the last example's */
  segmentIds: Int32Array;
  /** task_type of each segment, by segment id (padding has none) */
  taskTypes: string[];
}

/** The JSON shape of a row (`ringtune data preview --json`), snake_case like the wire and the job spec. */
export function rowToJson(r: Row): Record<string, unknown> {
  return {
    input_ids: Array.from(r.inputIds),
    labels: Array.from(r.labels),
    position_ids: Array.from(r.positionIds),
    segment_ids: Array.from(r.segmentIds),
    task_types: r.taskTypes,
  };
}

/** Rows of any lengths as one batch, each padded to the longest (padded mode) or all already seqLen. */
export function rowsToBatch(rows: Row[], padId: number): NativeBatch {
  const seqLen = rows.reduce((m, r) => Math.max(m, r.inputIds.length), 0);
  const n = rows.length * seqLen;
  const batch: NativeBatch = {
    rows: rows.length,
    seqLen,
    inputIds: new Int32Array(n).fill(padId),
    labels: new Int32Array(n).fill(IGNORE_INDEX),
    positionIds: new Int32Array(n),
    segmentIds: new Int32Array(n),
  };
  rows.forEach((r, i) => {
    const off = i * seqLen;
    batch.inputIds.set(r.inputIds, off);
    batch.labels.set(r.labels, off);
    batch.positionIds.set(r.positionIds, off);
    batch.segmentIds.set(r.segmentIds, off);
    const len = r.inputIds.length;
    if (len < seqLen) {
      const padSegment = len === 0 ? 0 : r.segmentIds[len - 1] + 1;
      for (let t = len; t < seqLen; t++) {
        batch.segmentIds[off + t] = padSegment;
        batch.positionIds[off + t] = t - len;
      }
    }
  });
  return batch;
}

/** Target positions (label != IGNORE_INDEX) in rows: the global batch's loss normaliser. */
export function countTargets(rows: readonly Row[]): number {
  let n = 0;
  for (const r of rows) for (const l of r.labels) n += l !== IGNORE_INDEX ? 1 : 0;
  return n;
}

/** Tokens of the rows' examples, padding excluded (a padding position's segment has no task_type). */
export function countRealTokens(rows: readonly Row[]): number {
  let n = 0;
  for (const r of rows) for (const segment of r.segmentIds) n += r.taskTypes[segment] !== undefined ? 1 : 0;
  return n;
}
