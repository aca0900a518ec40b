// What a step's metrics count in a row: targets (the loss normaliser) and tokens without the padding.
import assert from "node:assert/strict";
import { test } from "node:test";
import { IGNORE_INDEX } from "../../native/js/addon.js";
import { countRealTokens, countTargets, type Row } from "../../data/rows/row.js";

const X = IGNORE_INDEX;
// Two packed examples (segments 0 and 1) and 3 padding positions (segment 2, which has no task_type).
const packed: Row = {
  inputIds: Int32Array.from([1, 2, 3, 4, 5, 0, 0, 0]),
  labels: Int32Array.from([X, 3, X, 5, 9, X, X, X]),
  positionIds: Int32Array.from([0, 1, 0, 1, 2, 0, 1, 2]),
  segmentIds: Int32Array.from([0, 0, 1, 1, 1, 2, 2, 2]),
  taskTypes: ["qa", "json"],
};

test("real tokens leave out the padding; targets count labels other than IGNORE_INDEX", () => {
  assert.equal(countRealTokens([packed]), 5);
  assert.equal(countTargets([packed]), 3);
  assert.equal(countRealTokens([packed, packed]), 10);
  assert.equal(countRealTokens([]), 0);
});
