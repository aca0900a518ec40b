// The pieces that keep data preparation's memory flat whatever the dataset's size: numbers spilled to
// disk and read back, exact duplicates found over key partitions, a permutation computed one index at a
// time, the split decided record by record; and a dataset larger than one packing window made the same
// by the streamed and the in-memory pipelines.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { DuplicatePartitions } from "../../data/dedupe/duplicate_partitions.js";
import { mixSources } from "../../data/sampling/mix.js";
import { PACK_WINDOW } from "../../data/rows/pack.js";
import { Permutation } from "../../data/sampling/permutation.js";
import { buildDataset } from "../helpers/in_memory_pipeline.js";
import { makeRng } from "../../spec/rng.js";
import { rowToJson } from "../../data/rows/row.js";
import { int32Spill } from "../../data/storage/spill.js";
import { SplitSampler } from "../../data/sampling/split.js";
import { prepareDataset } from "../../data/streamed_pipeline.js";
import { parseSpec } from "../../spec/load.js";

const tmp = () => mkdtempSync(path.join(os.tmpdir(), "ringtune-bounded-"));

test("a permutation maps 0..n-1 onto itself one to one, the same for a seed and another for another seed", () => {
  for (const n of [0, 1, 2, 3, 5, 17, 1000, 4097, 65_537]) {
    const p = new Permutation(n, 7);
    const hit = new Uint8Array(n);
    for (let i = 0; i < n; i++) hit[p.at(i)]++;
    assert.ok(
      hit.every((c) => c === 1),
      `size ${n}`,
    );
  }
  const a = new Permutation(1000, 1);
  const b = new Permutation(1000, 2);
  const same = Array.from({ length: 1000 }, (_, i) => a.at(i) === new Permutation(1000, 1).at(i));
  assert.ok(same.every(Boolean));
  const moved = Array.from({ length: 1000 }, (_, i) => a.at(i) !== b.at(i)).filter(Boolean).length;
  assert.ok(moved > 900, `another seed moves ${moved} of 1000`);
  // roughly uniform: where index 0 lands over many seeds covers every tenth of the range
  const tenths = new Array(10).fill(0);
  for (let seed = 0; seed < 2000; seed++) tenths[Math.floor(new Permutation(100, seed).at(0) / 10)]++;
  assert.ok(
    tenths.every((c) => c > 120 && c < 280),
    `landing places ${tenths}`,
  );
  assert.throws(() => a.at(1000), /outside 0..999/);
});

test("spilled records read back by index (buffered or written) and in order, skipping ahead", () => {
  const dir = tmp();
  const s = int32Spill(path.join(dir, "s.tmp"), 3, 64); // a buffer of 5 records: most are on disk
  for (let i = 0; i < 103; i++) s.push([i, 2 * i, 7 - i]);
  assert.equal(s.length, 103);
  assert.deepEqual(Array.from(s.read(0)), [0, 0, 7]);
  assert.deepEqual(Array.from(s.read(101)), [101, 202, -94]); // still in the buffer
  assert.deepEqual(Array.from(s.read(57)), [57, 114, -50]);
  const r = s.reader();
  for (const i of [0, 1, 2, 40, 41, 102])
    assert.deepEqual(Array.from(r.view.subarray(r.at(i), r.at(i) + 3)), [i, 2 * i, 7 - i]);
  assert.throws(() => r.at(5), /read after/);
  s.close();
  assert.deepEqual(readdirSync(dir), []);
});

test("exact duplicates over key partitions: the first record with a key is kept, later ones repeat it unless robust", () => {
  const dir = tmp();
  const parts = new DuplicatePartitions(dir);
  const rng = makeRng(3);
  const expected: [number, number][] = [];
  const firstOf = new Map<string, number>();
  for (let v = 0; v < 20_000; v++) {
    if (v === 15_000) assert.ok(readdirSync(dir).includes("keys-0.tmp"), "the crowded partition was written out");
    // keys drawn from a small pool so that many repeat; half spread over every partition by the top bits,
    // half in the first partition, which then holds more keys than its buffer and goes through its file
    const k = Math.floor(rng() * 5000);
    const hi = k % 2 ? (Math.imul(k, 0x9e3779b1) >>> 0) | 1 : k + 1;
    const lo = k + 1;
    const robust = rng() < 0.05;
    const first = firstOf.get(`${hi}:${lo}`);
    if (first === undefined) firstOf.set(`${hi}:${lo}`, v);
    else if (!robust) expected.push([v, first]);
    parts.add(hi, lo, v, robust);
  }
  const { ordinals, firsts } = parts.resolve();
  assert.deepEqual(
    Array.from(ordinals, (o, i) => [o, firsts[i]]),
    expected,
  );
  parts.close();
  assert.deepEqual(readdirSync(dir), []);
});

test("the split decides record by record: exact counts per task, every position equally likely", () => {
  const picks = new Array(10).fill(0);
  for (let seed = 0; seed < 3000; seed++) {
    const s = new SplitSampler(
      new Map([
        ["a", 10],
        ["b", 1],
      ]),
      0.3,
      seed,
    );
    let val = 0;
    for (let i = 0; i < 10; i++)
      if (s.isVal("a")) {
        picks[i]++;
        val++;
      }
    assert.equal(val, 3);
    assert.equal(s.isVal("b"), false); // a task of one stays in training
    assert.throws(() => s.isVal("a"), /more records of task 'a' than were counted/);
  }
  for (const p of picks) assert.ok(Math.abs(p / 3000 - 0.3) < 0.04, `position frequencies ${picks}`);
});

test("a sampled remainder takes distinct items: 1.5 epochs of 100 items repeat exactly 50 of them", () => {
  const items = Array.from({ length: 100 }, (_, i) => i);
  const mixed = mixSources([{ items, epochs: 1.5 }], 11);
  const counts = new Array(100).fill(0);
  for (const x of mixed) counts[x]++;
  assert.equal(counts.filter((c) => c === 2).length, 50);
  assert.equal(counts.filter((c) => c === 1).length, 50);
});

test("more examples than one packing window: the streamed pipeline packs window by window as the in-memory one", async () => {
  const dir = tmp();
  const file = path.join(dir, "many.jsonl");
  const n = PACK_WINDOW + 4000;
  const lines: string[] = [];
  for (let i = 0; i < n; i++)
    lines.push(JSON.stringify({ text: `${i} ${"w".repeat(i % 37)}`, task_type: `t${i % 2}` }));
  writeFileSync(file, lines.join("\n") + "\n");
  const spec = parseSpec(
    {
      model: { init: { config: "x.json" } },
      tokenizer: "byte",
      data: [{ path: file, epochs: 1.2 }],
      val_size: 0.01,
      seq_len: 200,
      cache_dir: path.join(dir, "c"),
    },
    "test",
    dir,
  );
  const memory = buildDataset(spec, { quiet: true, useCache: false, displayRoot: dir });
  const streamed = await prepareDataset(spec, { quiet: true, useCache: false, displayRoot: dir, threads: 2 });
  try {
    assert.deepEqual(streamed.stats, memory.stats);
    assert.ok(memory.stats.train.examples > PACK_WINDOW, `${memory.stats.train.examples} train examples`);
    assert.ok(memory.stats.train.efficiency > 0.97, `packing efficiency ${memory.stats.train.efficiency}`);
    for (const split of ["train", "val"] as const) {
      assert.equal(streamed[split].length, memory[split].length);
      for (let i = 0; i < memory[split].length; i += 97)
        assert.deepEqual(rowToJson(streamed[split].get(i)), rowToJson(memory[split][i]), `${split} row ${i}`);
    }
  } finally {
    streamed.close();
  }
});
