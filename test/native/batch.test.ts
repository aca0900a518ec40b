// BATCH.json validation: defaults for positions and segments, and errors that name file and field.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseBatch, checkBatchVocab } from "../../hf/batch.js";

const FILE = "/data/batch.json";

test("position_ids default to 0..T-1 and segment_ids to one segment per row", () => {
  const b = parseBatch(
    {
      input_ids: [
        [5, 6, 7],
        [8, 9, 10],
      ],
      labels: [
        [6, 7, -100],
        [9, 10, -100],
      ],
    },
    FILE,
  );
  assert.equal(b.rows, 2);
  assert.equal(b.seqLen, 3);
  assert.deepEqual([...b.positionIds], [0, 1, 2, 0, 1, 2]);
  assert.deepEqual([...b.segmentIds], [0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...b.labels], [6, 7, -100, 9, 10, -100]);
});

test("given position and segment ids are kept", () => {
  const b = parseBatch(
    { input_ids: [[1, 2, 3, 4]], labels: [[2, 3, 4, 5]], position_ids: [[0, 1, 0, 1]], segment_ids: [[0, 0, 1, 1]] },
    FILE,
  );
  assert.deepEqual([...b.positionIds], [0, 1, 0, 1]);
  assert.deepEqual([...b.segmentIds], [0, 0, 1, 1]);
});

test("ragged rows are refused naming the file and the row", () => {
  assert.throws(
    () =>
      parseBatch(
        {
          input_ids: [
            [1, 2],
            [1, 2, 3],
          ],
          labels: [
            [1, 2],
            [1, 2, 3],
          ],
        },
        FILE,
      ),
    /batch\.json: input_ids\[1\] has 3 tokens, expected 2/,
  );
});

test("labels of another shape are refused", () => {
  assert.throws(() => parseBatch({ input_ids: [[1, 2]], labels: [[1, 2, 3]] }, FILE), /labels\[0\] has 3 tokens/);
  assert.throws(
    () =>
      parseBatch(
        {
          input_ids: [[1, 2]],
          labels: [
            [1, 2],
            [3, 4],
          ],
        },
        FILE,
      ),
    /labels has 2 rows, input_ids has 1/,
  );
});

test("missing labels, unknown keys and non-integers are named", () => {
  assert.throws(() => parseBatch({ input_ids: [[1, 2]] }, FILE), /batch\.json: labels/);
  assert.throws(
    () => parseBatch({ input_ids: [[1, 2]], labels: [[1, 2]], attention_mask: [[1, 1]] }, FILE),
    /attention_mask/,
  );
  assert.throws(() => parseBatch({ input_ids: [[1, 2.5]], labels: [[1, 2]] }, FILE), /input_ids\.0\.1/);
});

test("negative labels other than -100 and a segment that resumes are refused", () => {
  assert.throws(() => parseBatch({ input_ids: [[1, 2]], labels: [[1, -1]] }, FILE), /labels\[0\]\[1\] is -1/);
  assert.throws(
    () => parseBatch({ input_ids: [[1, 2, 3]], labels: [[1, 2, 3]], segment_ids: [[0, 1, 0]] }, FILE),
    /segment 0 resumes at position 2/,
  );
});

test("token ids at or above the vocabulary size are refused", () => {
  const b = parseBatch({ input_ids: [[1, 40]], labels: [[39, -100]] }, FILE);
  assert.throws(() => checkBatchVocab(b, 40, FILE), /input_ids\[0\]\[1\] = 40 is not below vocab_size 40/);
  const c = parseBatch({ input_ids: [[1, 2]], labels: [[40, -100]] }, FILE);
  assert.throws(() => checkBatchVocab(c, 40, FILE), /labels\[0\]\[0\] = 40/);
});
