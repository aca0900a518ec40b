// The zigzag layout: rank i of N holds chunks i and 2N-1-i of each row, with the row's own ids; the
// shares of a group together hold every token exactly once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { toTokenBatch } from "../../proto/mod.js";
import { sequenceGroupOf, zigzagShare, zigzagWidth } from "../../coordinator/train/zigzag.js";

function numbered(rows: number, seqLen: number) {
  const n = rows * seqLen;
  const ids = Int32Array.from({ length: n }, (_, i) => i);
  return toTokenBatch(
    {
      rows,
      seqLen,
      inputIds: ids,
      labels: ids.map((i) => i + 1000),
      positionIds: ids.map((i) => i % seqLen),
      segmentIds: ids.map((i) => Math.floor((i % seqLen) / 5)),
    },
    ids.map((i) => i % 3),
    ["a", "b", "c"],
  );
}

test("rank i of 4 holds chunks i and 7-i of every row, each token with its own ids", () => {
  const b = numbered(2, 32); // chunks of 4 tokens
  const s = zigzagShare(b, 4, 1, 0);
  assert.equal(s.row_count, 2);
  assert.equal(s.seq_len, 8);
  assert.deepEqual([...s.input_ids.subarray(0, 8)], [4, 5, 6, 7, 24, 25, 26, 27]);
  assert.deepEqual([...s.input_ids.subarray(8, 16)], [36, 37, 38, 39, 56, 57, 58, 59]);
  assert.deepEqual([...s.position_ids.subarray(0, 8)], [4, 5, 6, 7, 24, 25, 26, 27]);
  assert.deepEqual([...s.labels.subarray(0, 4)], [1004, 1005, 1006, 1007]);
  assert.deepEqual([...s.segment_ids.subarray(4, 8)], [4, 5, 5, 5]);
  assert.deepEqual([...s.token_task.subarray(0, 4)], [1, 2, 0, 1]);
});

test("the shares of a group hold every token exactly once", () => {
  const b = numbered(3, 48);
  for (const n of [1, 2, 3]) {
    const seen = new Int32Array(b.input_ids.length);
    for (let r = 0; r < n; r++) for (const id of zigzagShare(b, n, r, 0).input_ids) seen[id]! += 1;
    assert.ok(
      seen.every((c) => c === 1),
      `N=${n}`,
    );
  }
});

test("rows narrower than a whole number of chunks are padded with an untargeted segment of their own", () => {
  const b = numbered(1, 10); // N=2: width 12, chunks of 3
  assert.equal(zigzagWidth(10, 2), 12);
  const s = zigzagShare(b, 2, 0, 99); // chunks 0 and 3: tokens 0..2 and 9..11
  assert.deepEqual([...s.input_ids], [0, 1, 2, 9, 99, 99]);
  assert.deepEqual([...s.labels.subarray(4)], [-100, -100]);
  assert.deepEqual([...s.segment_ids.subarray(3)], [1, 2, 2]);
  assert.deepEqual([...s.token_task.subarray(4)], [-1, -1]);
});

test("ranks form groups of N consecutive ranks", () => {
  assert.deepEqual(sequenceGroupOf(0, 2), { group: 0, groupRank: 0 });
  assert.deepEqual(sequenceGroupOf(3, 2), { group: 1, groupRank: 1 });
  assert.deepEqual(sequenceGroupOf(5, 3), { group: 1, groupRank: 2 });
  assert.throws(() => zigzagShare(numbered(1, 8), 2, 2, 0), /rank 2 outside a group of 2/);
});
