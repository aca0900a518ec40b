// The streamed pipeline (worker threads, token cache on disk) against the in-memory one: the same rows,
// statistics and problems for the same spec and seed; and its cache reused across jobs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildDatasetInThread } from "../../data/build_in_thread.js";
import { buildDataset } from "../helpers/in_memory_pipeline.js";
import type { DataSpec } from "../../data/data_keys.js";
import { rowToJson } from "../../data/rows/row.js";
import { prepareDataset, type PrepareProgress } from "../../data/streamed_pipeline.js";
import { loadSpec, parseSpec } from "../../spec/load.js";
import { fixtures, repoRoot } from "../helpers/data_fixtures.js";

function tmp(): string {
  return mkdtempSync(path.join(os.tmpdir(), "ringtune-streamed-"));
}

/** Records of several task types, with exact and near duplicates, multi-turn chats and long texts. */
function mixedCorpus(dir: string, name: string, n: number): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const task = `t/${i % 3}`;
    if (i % 11 === 5)
      lines.push(lines[i - 1]); // an exact duplicate
    else if (i % 7 === 0)
      lines.push(JSON.stringify({ text: `document ${i} ${"lorem ipsum ".repeat(i % 40)}`, task_type: task }));
    else if (i % 5 === 0)
      lines.push(
        JSON.stringify({
          conversations: [
            { from: "human", value: `hello ${i}` },
            { from: "gpt", value: `the same long answer about the weather today, number ${i % 2}` },
            { from: "human", value: "and tomorrow?" },
            { from: "gpt", value: `rain ${"x".repeat(i % 23)}` },
          ],
          task_type: task,
        }),
      );
    else lines.push(JSON.stringify({ instruction: `${name} question ${i}?`, output: `answer ${i}`, task_type: task }));
  }
  const file = path.join(dir, name);
  writeFileSync(file, lines.join("\n") + "\n");
  return file;
}

async function assertSameDataset(spec: DataSpec, displayRoot: string, threads: number, rangeBytes?: number) {
  {
    const memory = buildDataset(spec, { quiet: true, useCache: false, displayRoot });
    const streamed = await prepareDataset(spec, { quiet: true, useCache: false, displayRoot, threads, rangeBytes });
    try {
      assert.deepEqual(streamed.stats, memory.stats);
      assert.deepEqual(streamed.problems, memory.problems);
      assert.equal(streamed.failed, memory.failed);
      for (const split of ["train", "val"] as const) {
        assert.equal(streamed[split].length, memory[split].length, `${split} rows`);
        for (let i = 0; i < memory[split].length; i++)
          assert.deepEqual(rowToJson(streamed[split].get(i)), rowToJson(memory[split][i]), `${split} row ${i}`);
      }
      assert.ok(memory.train.length > 0);
      return memory.stats;
    } finally {
      streamed.close();
    }
  }
}

test("the bundled example spec: the streamed pipeline gives the in-memory pipeline's rows, stats and problems", async () => {
  const spec = { ...loadSpec(path.join(repoRoot, "examples/sft_byte.yaml")), cache_dir: path.join(tmp(), "c") };
  await assertSameDataset(spec, repoRoot, 3);
});

test("bad records, packed and padded, mixed by weight with a split: the same rows and problems", async () => {
  const dir = tmp();
  const a = mixedCorpus(dir, "a.jsonl", 400);
  const b = mixedCorpus(dir, "b.jsonl", 90);
  const base = {
    model: { init: { config: "x.json" } },
    tokenizer: "byte",
    template: "chatml",
    data: [
      { path: a, weight: 0.7 },
      { path: b, weight: 0.3 },
      { path: path.join(fixtures, "bad_records.jsonl"), weight: 0.1 },
    ],
    val_size: 0.15,
    seq_len: 96,
    overlong: "drop",
    cache_dir: path.join(dir, "c"),
  };
  // JSONL files cut into ranges of a few lines each: line numbers carried across ranges and threads
  const stats = await assertSameDataset(parseSpec(base, "test", dir), dir, 2, 700);
  // the corpus exercises every problem kind the threads and the reader report
  assert.ok(stats.nearDuplicates > 0 && stats.dropped.duplicate > 0 && stats.dropped.invalid > 0);
  assert.ok(stats.dropped.overlong > 0 && stats.val.rows > 0);
  await assertSameDataset(parseSpec({ ...base, packing: false, overlong: "truncate", seed: 7 }, "test", dir), dir, 1);
  await assertSameDataset(parseSpec({ ...base, data: [{ path: a, epochs: 1.5 }], val_size: 5 }, "test", dir), dir, 4);
  // a JSON array and a .txt corpus (read on the main thread, sent to the threads as records) beside JSONL
  const txt = path.join(dir, "c.txt");
  writeFileSync(txt, "first line of text\n\nsecond line of text\nfirst line of text\n");
  const mixedKinds = {
    ...base,
    data: [{ path: a }, { path: path.join(fixtures, "bad_records.json") }, { path: txt }],
    val_size: 0,
  };
  const kinds = await assertSameDataset(parseSpec(mixedKinds, "test", dir), dir, 2, 3000);
  assert.equal(kinds.sources.length, 3);
  assert.ok(kinds.sources.every((s) => s.read > 0));
  // dedup: none keeps the exact repeats in both pipelines (and the near-duplicate report still runs)
  const kept = await assertSameDataset(parseSpec({ ...base, dedup: "none" }, "test", dir), dir, 2);
  assert.equal(kept.dropped.duplicate ?? 0, 0);
  assert.ok(kept.nearDuplicates > 0);
});

test("a BPE tokenizer.json with the model's Jinja template: the same rows", async () => {
  const spec = parseSpec(
    {
      model: { path: path.join(fixtures, "bpe-qwen") },
      template: "model",
      data: [{ path: mixedCorpus(tmp(), "m.jsonl", 120) }],
      val_size: 0.1,
      seq_len: 256,
      cache_dir: path.join(tmp(), "c"),
    },
    "test",
    fixtures,
  );
  await assertSameDataset(spec, fixtures, 2);
});

test("a second job with the same data reads the token cache without tokenizing; changed data misses it", async () => {
  const dir = tmp();
  const file = mixedCorpus(dir, "a.jsonl", 200);
  const spec = parseSpec(
    {
      model: { init: { config: "x.json" } },
      tokenizer: "byte",
      data: [{ path: file }],
      seq_len: 128,
      cache_dir: path.join(dir, "c"),
    },
    "test",
    dir,
  );
  const heard: PrepareProgress[] = [];
  const first = await buildDatasetInThread(spec, (p) => heard.push(p));
  assert.equal(first.fromCache, false);
  assert.ok(heard.length > 0 && heard.at(-1)!.tokens === first.stats.train.tokens + first.stats.val.tokens);
  const firstRows = first.train.slice().map(rowToJson);
  first.close();

  const again: PrepareProgress[] = [];
  const second = await buildDatasetInThread(spec, (p) => again.push(p));
  assert.equal(second.fromCache, true);
  assert.equal(second.cacheDir, first.cacheDir);
  assert.equal(again.length, 0, "nothing was read or tokenized");
  assert.deepEqual(second.train.slice().map(rowToJson), firstRows);
  assert.deepEqual(second.stats, first.stats);
  second.close();

  const sameFromCli = await prepareDataset(spec, { quiet: true });
  assert.equal(sameFromCli.fromCache, true);
  sameFromCli.close();

  appendFileSync(file, JSON.stringify({ instruction: "one more?", output: "yes" }) + "\n");
  const third = await prepareDataset(spec, { quiet: true });
  assert.equal(third.fromCache, false);
  assert.notEqual(third.cacheDir, first.cacheDir);
  assert.equal(third.stats.recordsRead, first.stats.recordsRead + 1);
  third.close();

  const otherSetting = await prepareDataset({ ...spec, seq_len: 64 }, { quiet: true });
  assert.equal(otherSetting.fromCache, false);
  otherSetting.close();
});

test("a tokenizer folder that does not exist fails the build with a message naming it", async () => {
  const dir = tmp();
  const spec = parseSpec(
    {
      model: { init: { config: "x.json" } },
      tokenizer: "byte",
      data: [{ path: mixedCorpus(dir, "a.jsonl", 20) }],
      seq_len: 128,
      cache_dir: path.join(dir, "c"),
    },
    "test",
    dir,
  );
  const broken = { ...spec, template: "model" as const, tokenizer: path.join(dir, "no-such-tokenizer") };
  await assert.rejects(prepareDataset(broken, { quiet: true }), /tokenizer folder not found/);
});
