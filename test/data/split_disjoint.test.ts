// The validation split read straight from the rows: every record lands in exactly one of train and
// validation, once, whatever packing does with its examples.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { RowTable } from "../../data/rows/token_cache.js";
import { prepareDataset } from "../../data/streamed_pipeline.js";
import { parseSpec } from "../../spec/load.js";
import type { TextTokenizer } from "../../text/tokenizers/tokenizer.js";

const RECORDS = 240;

/** The record numbers (`#n#` in each record's text) of every row of a split, as often as they occur. */
function recordNumbers(rows: RowTable, tokenizer: TextTokenizer): number[] {
  const out: number[] = [];
  for (let i = 0; i < rows.length; i++) {
    const row = rows.get(i);
    const real = Array.from(row.inputIds).filter((_, t) => row.taskTypes[row.segmentIds[t]!] !== undefined);
    for (const m of tokenizer.decode(real).matchAll(/#(\d+)#/g)) out.push(Number(m[1]));
  }
  return out;
}

for (const packing of [true, false]) {
  test(`no record is in both train and validation, and none is lost (packing ${packing})`, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "ringtune-split-"));
    const lines = Array.from({ length: RECORDS }, (_, i) =>
      JSON.stringify({
        instruction: `question #${i}# ${"?".repeat(i % 9)}`,
        output: `answer ${i}`,
        task_type: `t${i % 3}`,
      }),
    );
    writeFileSync(path.join(dir, "data.jsonl"), lines.join("\n") + "\n");
    const spec = parseSpec(
      {
        model: { init: { config: "x.json" } },
        tokenizer: "byte",
        template: "chatml",
        data: [{ path: "data.jsonl" }],
        val_size: 0.2,
        seq_len: 192,
        packing,
        cache_dir: path.join(dir, "cache"),
      },
      "test.yaml",
      dir,
    );
    const data = await prepareDataset(spec, { quiet: true, useCache: false, threads: 2 });
    try {
      const train = recordNumbers(data.train, data.setup.tokenizer);
      const val = recordNumbers(data.val, data.setup.tokenizer);
      assert.equal(new Set(train).size, train.length, "no record twice in train");
      assert.equal(new Set(val).size, val.length, "no record twice in validation");
      const inBoth = val.filter((n) => new Set(train).has(n));
      assert.deepEqual(inBoth, [], "records in both train and validation");
      assert.deepEqual(
        [...train, ...val].sort((a, b) => a - b),
        Array.from({ length: RECORDS }, (_, i) => i),
        "every record in one split",
      );
      // A fifth of each task held out (stratified), so the check above covered a real split.
      assert.equal(val.length, RECORDS * 0.2);
      for (const task of [0, 1, 2]) assert.equal(val.filter((n) => n % 3 === task).length, (RECORDS * 0.2) / 3);
    } finally {
      data.close();
    }
  });
}
