// The whole pipeline: determinism, the cache, and the mix as it reaches the rows.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildDataset } from "../helpers/in_memory_pipeline.js";
import { rowToJson } from "../../data/rows/row.js";
import { parseSpec } from "../../spec/load.js";
import { fixtures } from "../helpers/data_fixtures.js";

function corpus(dir: string, name: string, n: number, task: string): string {
  const file = path.join(dir, name);
  const lines = [];
  for (let i = 0; i < n; i++)
    lines.push(
      JSON.stringify({
        instruction: `${name} question ${i}?`,
        output: `answer ${i} ${"x".repeat(i % 37)}`,
        task_type: task,
      }),
    );
  writeFileSync(file, lines.join("\n") + "\n");
  return file;
}

function setup(extra: Record<string, unknown> = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ringtune-pipe-"));
  const a = corpus(dir, "domain.jsonl", 600, "domain/qa");
  const b = corpus(dir, "general.jsonl", 100, "general/qa");
  const spec = parseSpec(
    {
      model: { init: { config: "x.json" } },
      tokenizer: "byte",
      data: [
        { path: a, weight: 0.75 },
        { path: b, weight: 0.25 },
      ],
      val_size: 0.1,
      seq_len: 256,
      cache_dir: path.join(dir, "cache"),
      ...extra,
    },
    "test",
    dir,
  );
  return { dir, spec };
}

test("same seed, same rows; the mix's weights reach the rows; val is stratified", () => {
  const { spec } = setup();
  const one = buildDataset(spec, { quiet: true, useCache: false });
  const two = buildDataset(spec, { quiet: true, useCache: false });
  assert.deepEqual(one.train.map(rowToJson), two.train.map(rowToJson));
  const segments = one.train.flatMap((r) => r.taskTypes);
  const general = segments.filter((t) => t === "general/qa").length / segments.length;
  assert.ok(Math.abs(general - 0.25) < 0.01, `general share ${general}`);
  assert.equal(one.stats.val.examples, 70); // 10% of 600 + 10% of 100
  assert.ok(one.stats.train.efficiency > 0.9, `efficiency ${one.stats.train.efficiency}`);
  const other = buildDataset({ ...spec, seed: 1 }, { quiet: true, useCache: false });
  assert.notDeepEqual(other.train.map(rowToJson), one.train.map(rowToJson));
});

test("a second build is served from the cache with identical rows; a changed setting misses it", () => {
  const { spec } = setup();
  const first = buildDataset(spec, { quiet: true });
  const second = buildDataset(spec, { quiet: true });
  assert.equal(first.fromCache, false);
  assert.equal(second.fromCache, true);
  assert.deepEqual(second.train.map(rowToJson), first.train.map(rowToJson));
  assert.deepEqual(second.stats, first.stats);
  assert.equal(buildDataset({ ...spec, seq_len: 128 }, { quiet: true }).fromCache, false);
});

test("padded mode: one example per row, no packing", () => {
  const { spec } = setup({ packing: false, val_size: 0 });
  const d = buildDataset(spec, { quiet: true, useCache: false });
  assert.equal(d.train.length, d.stats.train.examples);
  assert.ok(d.train.every((r) => r.taskTypes.length === 1 && r.segmentIds.every((s) => s === 0)));
});

test("a model folder's tokenizer.json and Jinja template run end to end", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ringtune-bpe-"));
  const spec = parseSpec(
    {
      model: { path: path.join(fixtures, "bpe-qwen") },
      template: "model",
      data: [{ path: corpus(dir, "a.jsonl", 50, "t/a") }],
      seq_len: 256,
      cache_dir: path.join(dir, "c"),
    },
    "test",
    dir,
  );
  const d = buildDataset(spec, { quiet: true, useCache: false });
  assert.equal(d.stats.train.examples, 50);
  assert.equal(d.setup.tokenizer.kind, "hf");
});
