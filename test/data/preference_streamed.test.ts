// The preference cache is built streaming (data/preference/stream_pairs.ts: a few numbers per pair in
// memory, tokens straight to disk, rows packed window by window) and must hold what the in-memory pipeline
// (test/helpers/in_memory_pairs.ts) makes of the same spec: the same rows of both splits, statistics and problems, with
// repeats, bad pairs, several sources mixed by weight and epochs, and packed or not.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { preparePairs } from "../helpers/in_memory_pairs.js";
import { preparePairsCached } from "../../data/preference/pair_cache.js";
import { rowToJson } from "../../data/rows/row.js";
import { parseSpec } from "../../spec/load.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "ringtune-pairs-streamed-"));

/** n TRL pairs of two task types, every 23rd a bad pair, every 17th a repeat of the fifth before (bad ones too). */
function pairsFile(name: string, n: number, salt: string): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const k = i % 17 === 16 ? i - 5 : i;
    const prompt = [{ role: "user", content: `${salt} question ${k}: ${"x".repeat(k % 40)}?` }];
    const chosen = [{ role: "assistant", content: `answer ${k}` }];
    const rejected = [{ role: "assistant", content: k % 23 === 11 ? `answer ${k}` : `wrong ${k * 7}` }];
    lines.push(JSON.stringify({ task_type: k % 3 ? "qa/a" : "qa/b", prompt, chosen, rejected }));
  }
  const file = path.join(tmp, name);
  writeFileSync(file, lines.join("\n") + "\n");
  return file;
}

const a = pairsFile("a.jsonl", 240, "a");
const b = pairsFile("b.jsonl", 90, "b");

function spec(extra: Record<string, unknown>, cache: string) {
  return parseSpec(
    {
      model: { init: { config: "none.json" } },
      tokenizer: "byte",
      template: "chatml",
      stage: "dpo",
      method: "lora",
      seq_len: 192,
      val_size: 0.1,
      cache_dir: path.join(tmp, cache),
      data: [{ path: a }],
      ...extra,
    },
    "job.yaml",
    tmp,
  );
}

const cases: [string, Record<string, unknown>][] = [
  ["packed, repeats dropped", {}],
  ["unpacked, repeats kept", { packing: false, dedup: "none" }],
  [
    "two sources by weight and epochs",
    {
      data: [
        { path: a, weight: 2 },
        { path: b, weight: 0.5 },
      ],
      val_size: 7,
    },
  ],
];

for (const [name, extra] of cases)
  test(`streamed into the cache = in memory: ${name}`, () => {
    const s = spec(extra, name.replace(/\W+/g, "-"));
    const ref = preparePairs(s, { displayRoot: tmp });
    const built = preparePairsCached(s, { displayRoot: tmp });
    try {
      assert.equal(built.fromCache, false);
      assert.ok(ref.problems.length > 0, "the data has bad pairs");
      for (const split of ["train", "val"] as const) {
        assert.ok(ref[split].length > 0, `${split} has rows`);
        assert.deepEqual(built[split].slice().map(rowToJson), ref[split].slice().map(rowToJson), split);
      }
      assert.deepEqual(built.stats, ref.stats);
      assert.deepEqual(built.problems, ref.problems);
      assert.equal(built.failed, ref.failed);
    } finally {
      built.close();
    }
  });
