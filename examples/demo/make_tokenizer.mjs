#!/usr/bin/env node
// Builds the `make demo` model's tokenizer: a byte-level BPE tokenizer.json (the format of Qwen2 and GPT-2,
// read by @huggingface/tokenizers) whose merges are learned from the demo's own training data, so the
// names, cities and items the model copies from a sentence into its JSON answer are single tokens, as they
// would be in any real model's vocabulary. A byte tokenizer makes the small model copy each name a byte at a
// time, which it learns slowly and unreliably. Digits stay one token each (Qwen2's pre-tokenizer), so order
// numbers the model never saw are still copied digit by digit.
// Deterministic: rerun with
//   node examples/demo/make_tokenizer.mjs [--data examples/demo/train.jsonl] [--out examples/demo/tokenizer] [--merges N]
// and tokenizer.json and tokenizer_config.json come out byte for byte the same.
// No BPE trainer ships on npm (the tokenizers library's trainer is Rust/Python only), so the classic
// algorithm is written out here: count adjacent symbol pairs over the pre-tokenized words, weighted by how
// often each word occurs; merge the most frequent pair (ties: the smaller pair in code-point order); repeat.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

// Qwen2's pre-tokenizer: words with their leading space, single digits, punctuation runs, whitespace.
const PRE_TOKENIZER_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/** GPT-2's map from the 256 byte values to printable characters: the byte-level BPE alphabet. */
function byteAlphabet() {
  const printable = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const chars = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) chars[b] = String.fromCodePoint(printable.includes(b) ? b : 256 + extra++);
  return chars;
}

function parseArgs(argv) {
  const opts = {
    data: path.join(here, "train.jsonl"),
    out: path.join(here, "tokenizer"),
    merges: 1000,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`make_tokenizer: ${flag} needs a value`);
    if (flag === "--data") opts.data = value;
    else if (flag === "--out") opts.out = value;
    else if (flag === "--merges") opts.merges = Number(value);
    else throw new Error(`make_tokenizer: unknown flag ${flag} (use --data, --out, --merges)`);
  }
  if (!Number.isInteger(opts.merges) || opts.merges < 0) throw new Error("make_tokenizer: --merges must be a count");
  return opts;
}

/** How often each pre-tokenized word occurs in the texts, as byte-level symbol strings. */
function countWords(texts, alphabet) {
  const split = new RegExp(PRE_TOKENIZER_REGEX.replace("(?i:", "(?:"), "gu");
  const counts = new Map();
  const encoder = new TextEncoder();
  for (const text of texts)
    for (const m of text.matchAll(split)) {
      const word = Array.from(encoder.encode(m[0]), (b) => alphabet[b]).join("");
      counts.set(word, (counts.get(word) ?? 0) + 1);
    }
  return counts;
}

/** The classic BPE training loop over word counts: the merges, most useful first. */
function learnMerges(wordCounts, mergeCount) {
  const words = [...wordCounts].map(([w, n]) => ({ symbols: Array.from(w), n }));
  const merges = [];
  while (merges.length < mergeCount) {
    const pairs = new Map();
    for (const { symbols, n } of words)
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = symbols[i] + " " + symbols[i + 1];
        pairs.set(key, (pairs.get(key) ?? 0) + n);
      }
    let best = null;
    let bestCount = 1; // a pair seen once is not worth a token
    for (const [key, n] of pairs) if (n > bestCount || (n === bestCount && best !== null && key < best)) [best, bestCount] = [key, n];
    if (best === null) break;
    merges.push(best);
    const [a, b] = best.split(" ");
    for (const w of words) {
      const out = [];
      for (let i = 0; i < w.symbols.length; i++) {
        if (i + 1 < w.symbols.length && w.symbols[i] === a && w.symbols[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(w.symbols[i]);
      }
      w.symbols = out;
    }
  }
  return merges;
}

function tokenizerJson(alphabet, merges) {
  const vocab = {};
  alphabet.forEach((c, i) => (vocab[c] = i));
  for (const m of merges) {
    const token = m.replace(" ", "");
    if (!(token in vocab)) vocab[token] = Object.keys(vocab).length;
  }
  const size = Object.keys(vocab).length;
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((content, i) => ({
      id: size + i,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: PRE_TOKENIZER_REGEX }, behavior: "Isolated", invert: false },
        byteLevel,
      ],
    },
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const texts = [];
  for (const line of readFileSync(opts.data, "utf8").split("\n")) {
    if (line.trim() === "") continue;
    // The chatml template opens each message with its role on a line of its own: learned as words too.
    for (const m of JSON.parse(line).messages) texts.push(`${m.role}\n`, m.content);
  }
  const alphabet = byteAlphabet();
  const merges = learnMerges(countWords(texts, alphabet), opts.merges);
  const json = tokenizerJson(alphabet, merges);
  const config = {
    bos_token: null,
    eos_token: "<|im_end|>",
    pad_token: "<|endoftext|>",
    model_max_length: 512,
    tokenizer_class: "PreTrainedTokenizerFast",
  };
  mkdirSync(opts.out, { recursive: true });
  writeFileSync(path.join(opts.out, "tokenizer.json"), JSON.stringify(json, null, 1) + "\n");
  writeFileSync(path.join(opts.out, "tokenizer_config.json"), JSON.stringify(config, null, 2) + "\n");
  const vocabSize = Object.keys(json.model.vocab).length + SPECIALS.length;
  console.log(`${opts.out}: ${merges.length} merges, vocabulary of ${vocabSize} (eos <|im_end|> = ${vocabSize - 1})`);
}

main();
