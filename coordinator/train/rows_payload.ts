// Rows as they travel to a worker (proto Rows): one batch of equal-length rows plus, per position, the
// index of its segment's task_type, so the worker can sum losses per task without knowing segments.
import type { Rows } from "../../proto/mod.js";
import type { Row } from "../data/row.js";
import { rowsToBatch } from "../data/row.js";

export function rowsPayload(rows: Row[], padId: number, seqLen: number): Rows {
  if (rows.length === 0) {
    const empty = new Int32Array(0);
    return {
      rows: 0,
      seq_len: seqLen,
      input_ids: empty,
      labels: empty,
      position_ids: empty,
      segment_ids: empty,
      token_task: empty,
      tasks: [],
    };
  }
  const batch = rowsToBatch(rows, padId);
  const tasks: string[] = [];
  const taskIndex = new Map<string, number>();
  const tokenTask = new Int32Array(batch.rows * batch.seqLen).fill(-1);
  rows.forEach((row, r) => {
    for (let t = 0; t < row.inputIds.length; t++) {
      const name = row.taskTypes[row.segmentIds[t]!];
      if (name === undefined) continue; // padding
      let k = taskIndex.get(name);
      if (k === undefined) {
        k = tasks.push(name) - 1;
        taskIndex.set(name, k);
      }
      tokenTask[r * batch.seqLen + t] = k;
    }
  });
  return {
    rows: batch.rows,
    seq_len: batch.seqLen,
    input_ids: batch.inputIds,
    labels: batch.labels,
    position_ids: batch.positionIds,
    segment_ids: batch.segmentIds,
    token_task: tokenTask,
    tasks,
  };
}

/** Target positions (label != -100) in rows: the global batch's loss normaliser. */
export function countTargets(rows: Row[]): number {
  let n = 0;
  for (const r of rows) for (const l of r.labels) n += l !== -100 ? 1 : 0;
  return n;
}
