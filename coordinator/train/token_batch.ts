// A rank's rows as they travel to a worker (proto TokenBatch): the rows as one native batch plus, per
// position, the index of its segment's task_type.
import { toTokenBatch, type TokenBatch } from "../../proto/mod.js";
import type { Row } from "../../data/rows/row.js";
import { rowsToBatch } from "../../data/rows/row.js";

export function tokenBatchOfRows(rows: Row[], padId: number, seqLen: number): TokenBatch {
  if (rows.length === 0) {
    const empty = new Int32Array(0);
    return toTokenBatch(
      { rows: 0, seqLen, inputIds: empty, labels: empty, positionIds: empty, segmentIds: empty },
      empty,
      [],
    );
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
  return toTokenBatch(batch, tokenTask, tasks);
}
