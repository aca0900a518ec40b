// Per-task loss sums and the wire batch: what a worker adds, what the coordinator merges, and the batch
// a worker refuses or splits into micro-batches.
import assert from "node:assert/strict";
import { test } from "node:test";
import { IGNORE_INDEX } from "../../native/js/addon.js";
import {
  addTokenLosses,
  decodeMessage,
  encodeMessage,
  EvalStep,
  meanLossByTask,
  mergeTaskSums,
  NO_TASK,
  ProtocolDecodeError,
  sliceTokenBatch,
  toTokenBatch,
  type TaskSums,
} from "../../proto/mod.js";

test("token losses add up per task, skipping ignored labels; positions without a task go to NO_TASK", () => {
  const sums: TaskSums = {};
  const losses = Float32Array.from([1, 2, 4, 8, 16]);
  const labels = Int32Array.from([5, IGNORE_INDEX, 6, 7, 8]);
  const tokenTask = Int32Array.from([0, 0, 1, 0, -1]);
  addTokenLosses(sums, losses, labels, tokenTask, ["qa", "json"]);
  assert.deepEqual(sums, { qa: [9, 2], json: [4, 1], [NO_TASK]: [16, 1] });
});

test("merged sums of two workers give the mean loss per task over both", () => {
  const total: TaskSums = {};
  mergeTaskSums(total, { qa: [3, 1], json: [2, 2] });
  mergeTaskSums(total, { qa: [5, 3] });
  mergeTaskSums(total, undefined);
  assert.deepEqual(total, { qa: [8, 4], json: [2, 2] });
  assert.deepEqual(meanLossByTask(total), { qa: 2, json: 1 });
});

const batch = (rows: number, seqLen: number, labelsLength = rows * seqLen) =>
  toTokenBatch(
    {
      rows,
      seqLen,
      inputIds: Int32Array.from({ length: rows * seqLen }, (_, i) => i),
      labels: new Int32Array(labelsLength),
      positionIds: new Int32Array(rows * seqLen),
      segmentIds: new Int32Array(rows * seqLen),
    },
    new Int32Array(rows * seqLen).fill(-1),
    [],
  );

test("a batch whose arrays do not hold row_count * seq_len elements is refused, naming the field", () => {
  assert.throws(
    () => encodeMessage(EvalStep, { job: "j", micro_batch_rows: 1, batch: batch(2, 3, 5) }),
    (err: unknown) =>
      err instanceof ProtocolDecodeError && /batch\.labels: has 5 elements, expected .* 6/.test(err.message),
  );
});

test("a batch survives the wire, and a slice of its rows is a view of the decoded arrays", () => {
  const m = decodeMessage(EvalStep, encodeMessage(EvalStep, { job: "j", micro_batch_rows: 1, batch: batch(3, 4) }));
  assert.equal(m.batch.row_count, 3);
  const { batch: part, tokenTask } = sliceTokenBatch(m.batch, 1, 3);
  assert.equal(part.rows, 2);
  assert.equal(part.seqLen, 4);
  assert.deepEqual([...part.inputIds], [4, 5, 6, 7, 8, 9, 10, 11]);
  assert.equal(part.inputIds.buffer, m.batch.input_ids.buffer);
  assert.equal(tokenTask.length, 8);
});
