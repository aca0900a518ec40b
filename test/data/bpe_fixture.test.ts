// The committed BPE tokenizer fixture is what its builder makes: the builder runs in memory here and never
// writes into the repository while tests run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { bpeTokenizerFiles } from "../fixtures/data/build_bpe_tokenizer.js";
import { fixtures } from "../helpers/data_fixtures.js";

test("the committed bpe-qwen tokenizer files equal the builder's output byte for byte", () => {
  const built = bpeTokenizerFiles();
  assert.deepEqual(Object.keys(built).sort(), ["tokenizer.json", "tokenizer_config.json"]);
  for (const [name, text] of Object.entries(built)) {
    const committed = readFileSync(path.join(fixtures, "bpe-qwen", name), "utf8");
    assert.ok(
      committed === text,
      `test/fixtures/data/bpe-qwen/${name} differs from the builder's output (${committed.length} vs ${text.length} chars); ` +
        "rebuild it with node dist/test/fixtures/data/build_bpe_tokenizer.js test/fixtures/data/bpe-qwen",
    );
  }
});
