// Packing invariants on random data, and the mixing and splitting that feed it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { firstFitDecreasing } from "../../data/rows/pack.js";
import { packRows } from "../helpers/in_memory_steps.js";
import { rowsToBatch } from "../../data/rows/row.js";
import type { Example } from "../../data/examples/example.js";
import { makeRng } from "../../spec/rng.js";
import { mixCounts, mixSources } from "../../data/sampling/mix.js";
import { stratifiedSplit } from "../../data/sampling/split.js";
import { fitToRow } from "../../data/examples/example.js";

const PAD = 9999;

function randomExamples(n: number, maxLen: number, seed: number): Example[] {
  const rng = makeRng(seed);
  return Array.from({ length: n }, (_, i) => {
    const len = 1 + Math.floor(rng() * maxLen);
    const inputIds = Int32Array.from({ length: len }, (_, t) => i * 1000 + t); // unique per token
    const labels = Int32Array.from({ length: len }, (_, t) => (rng() < 0.5 ? -100 : i * 1000 + t + 1));
    return { inputIds, labels, taskType: `task${i % 3}`, sourceIndex: i % 2 };
  });
}

for (const seed of [1, 2, 3]) {
  test(`packing (seed ${seed}): every token once, labels kept per segment, positions restart, padding only at the tail`, () => {
    const seqLen = 128;
    const examples = randomExamples(500, seqLen, seed);
    const rows = packRows(examples, seqLen, PAD, seed, "train");
    const seen = new Map<number, Int32Array>();
    for (const r of rows) {
      assert.equal(r.inputIds.length, seqLen);
      let t = 0;
      let seg = 0;
      while (t < seqLen && r.segmentIds[t] === seg && seg < r.taskTypes.length) {
        let end = t;
        while (end < seqLen && r.segmentIds[end] === seg) end++;
        const id = Math.floor(r.inputIds[t] / 1000);
        const ex = examples[id];
        assert.ok(!seen.has(id), `example ${id} appears twice`);
        seen.set(id, r.inputIds.slice(t, end));
        assert.deepEqual(r.inputIds.slice(t, end), ex.inputIds);
        // labels never reach into the next segment: they are the example's own, last one included
        assert.deepEqual(r.labels.slice(t, end), ex.labels);
        for (let k = t; k < end; k++) assert.equal(r.positionIds[k], k - t);
        t = end;
        seg++;
      }
      // whatever is left is one padding segment with its own id, no targets
      for (let k = t; k < seqLen; k++) {
        assert.equal(r.segmentIds[k], r.taskTypes.length);
        assert.equal(r.labels[k], -100);
        assert.equal(r.inputIds[k], PAD);
        assert.equal(r.positionIds[k], k - t);
      }
    }
    assert.equal(seen.size, examples.length);
    const total = examples.reduce((a, e) => a + e.inputIds.length, 0);
    // first-fit decreasing uses at most 11/9 OPT + 1 rows
    assert.ok(rows.length <= Math.ceil(((11 / 9) * total) / seqLen) + 1, `${rows.length} rows for ${total} tokens`);
  });
}

test("the segment tree finds the same rows as a plain first-fit scan", () => {
  const rng = makeRng(7);
  const lengths = Array.from({ length: 2000 }, () => 1 + Math.floor(rng() * 300));
  const { rowOf } = firstFitDecreasing(lengths, 512);
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b] - lengths[a] || a - b);
  const room: number[] = [];
  const expect = new Int32Array(lengths.length);
  for (const i of order) {
    let r = room.findIndex((x) => x >= lengths[i]);
    if (r < 0) r = room.push(512) - 1;
    room[r] -= lengths[i];
    expect[i] = r;
  }
  assert.deepEqual(rowOf, expect);
});

test("padded mode batch: rows padded to the longest, padding its own segment with -100 labels", () => {
  const ex = randomExamples(3, 20, 5);
  const rows = ex.map((e) => packRows([e], e.inputIds.length, PAD, 0, "train")[0]);
  const b = rowsToBatch(rows, PAD);
  const longest = Math.max(...ex.map((e) => e.inputIds.length));
  assert.equal(b.seqLen, longest);
  for (let i = 0; i < 3; i++) {
    const len = ex[i].inputIds.length;
    for (let t = len; t < longest; t++) {
      assert.equal(b.labels[i * longest + t], -100);
      assert.equal(b.segmentIds[i * longest + t], 1);
    }
  }
});

test("mixing weights hold: 75% domain / 25% replay whatever the source sizes", () => {
  const domain = Array.from({ length: 1000 }, (_, i) => `d${i}`);
  const general = Array.from({ length: 120 }, (_, i) => `g${i}`);
  const mixed = mixSources(
    [
      { items: domain, weight: 0.75, epochs: 1 },
      { items: general, weight: 0.25, epochs: 1 },
    ],
    0,
  );
  const share = mixed.filter((x) => x.startsWith("g")).length / mixed.length;
  assert.ok(Math.abs(share - 0.25) < 0.005, `replay share ${share}`);
  assert.equal(mixed.length, 1120);
  // a small source repeats whole before any item is sampled twice
  const counts = new Map<string, number>();
  for (const x of mixed) counts.set(x, (counts.get(x) ?? 0) + 1);
  for (const g of general) assert.ok(counts.get(g)! >= 2);
});

test("epochs without weights repeat a source; weights for only some sources is an error", () => {
  assert.deepEqual(mixCounts([10, 20], [undefined, undefined], [2, 1]), [20, 20]);
  assert.throws(() => mixCounts([10, 20], [1, undefined], [1, 1]), /every data source or to none/);
});

test("same seed, same mix; another seed, another order", () => {
  const src = () => [{ items: Array.from({ length: 100 }, (_, i) => i), epochs: 1.5 }];
  assert.deepEqual(mixSources(src(), 3), mixSources(src(), 3));
  assert.notDeepEqual(mixSources(src(), 3), mixSources(src(), 4));
});

test("validation split is stratified by task_type", () => {
  const items = [...Array.from({ length: 100 }, () => "a"), ...Array.from({ length: 30 }, () => "b"), "c"];
  const { train, val } = stratifiedSplit(items, (x) => x, 0.1, 0);
  assert.equal(val.filter((x) => x === "a").length, 10);
  assert.equal(val.filter((x) => x === "b").length, 3);
  assert.equal(val.filter((x) => x === "c").length, 0); // a task of one stays in training
  assert.equal(train.length + val.length, items.length);
  assert.equal(stratifiedSplit(items, (x) => x, 13, 0).val.length, 13);
});

test("overlong SFT: truncate keeps the final answer and cuts the earliest context; drop drops", () => {
  const inputIds = Int32Array.from({ length: 20 }, (_, i) => i);
  const labels = Int32Array.from({ length: 20 }, (_, i) => (i >= 16 ? i + 1 : -100));
  const t = fitToRow({ inputIds, labels }, 8, false, "truncate");
  assert.ok(t.kind === "truncated", `kind ${t.kind}`);
  assert.deepEqual(Array.from(t.parts[0].inputIds), [12, 13, 14, 15, 16, 17, 18, 19]);
  assert.equal(fitToRow({ inputIds, labels }, 8, false, "drop").kind, "dropped");
  assert.equal(fitToRow({ inputIds, labels }, 3, false, "truncate").kind, "dropped"); // answer of 4 > 3
  const split = fitToRow({ inputIds, labels: inputIds }, 8, true, "drop");
  assert.ok(split.kind === "split", `kind ${split.kind}`);
  assert.deepEqual(
    split.parts.map((p) => p.inputIds.length),
    [8, 8, 4],
  );
});

test("mixing a source of a million examples keeps each once (no argument-list limit on large sources)", () => {
  const items = Array.from({ length: 1_000_000 }, (_, i) => i);
  const mixed = mixSources([{ items, weight: 1, epochs: 1 }], 7);
  assert.equal(mixed.length, items.length);
  const seen = new Uint8Array(items.length);
  for (const e of mixed) seen[e]++;
  assert.ok(seen.every((c) => c === 1));
});
