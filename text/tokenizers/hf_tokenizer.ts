// A Hugging Face tokenizer.json (+ tokenizer_config.json for special tokens and the chat template),
// run by @huggingface/tokenizers.
import { createHash } from "node:crypto";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { cutsByPieces, type TextTokenizer } from "./tokenizer.js";
import { inputPresent, readRegularFile } from "../../files/input_files.js";
import { unsupportedReason, WordCacheEncoder, type TokenizerJson } from "./word_cache_encoder.js";

/** Text the fast encoder must reproduce the library on before it is trusted: words, numbers, scripts, specials. */
const PROBE =
  "Hello, world! It's 2024-05-01: x=3.5kg; don't   stop\n\n\tindented  café naïve 你好，世界 Привет 🙂 " +
  "'re 'LL ABC123 __init__ foo.bar() {\"k\": [1, 2]}\r\n  trailing   ";

export interface TokenizerConfig {
  bos_token?: string | { content: string } | null;
  eos_token?: string | { content: string } | null;
  pad_token?: string | { content: string } | null;
  chat_template?: string | { name: string; template: string }[];
  [k: string]: unknown;
}

export function tokenText(t: TokenizerConfig["bos_token"]): string | null {
  if (t === undefined || t === null) return null;
  return typeof t === "string" ? t : t.content;
}

/** tokenizer_config.json from a folder, or {} when it has none. */
export function readTokenizerConfig(dir: string): TokenizerConfig {
  const file = path.join(dir, "tokenizer_config.json");
  return inputPresent(file) ? (JSON.parse(readRegularFile(file)) as TokenizerConfig) : {};
}

export class HfTokenizer implements TextTokenizer {
  readonly kind = "hf" as const;
  readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly eosToken: string;
  readonly bosId: number | null;
  readonly eosId: number;
  readonly padId: number;
  readonly fingerprint: string;
  readonly config: TokenizerConfig;
  private readonly tok: Tokenizer;
  /** the word-cached encoder, when it reproduces this tokenizer.json */
  private readonly fast: WordCacheEncoder | null;

  constructor(dir: string) {
    const jsonFile = path.join(dir, "tokenizer.json");
    if (!inputPresent(jsonFile)) throw new Error(`no tokenizer.json in ${dir}`);
    const jsonText = readRegularFile(jsonFile);
    this.config = readTokenizerConfig(dir);
    const json = JSON.parse(jsonText) as TokenizerJson;
    this.tok = new Tokenizer(json, this.config);
    this.fast = this.fastEncoder(json);
    this.fingerprint = createHash("sha256").update(jsonText).update(JSON.stringify(this.config)).digest("hex");
    let maxId = -1;
    for (const id of this.tok.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.bosToken = tokenText(this.config.bos_token);
    this.bosId = this.bosToken === null ? null : this.requireId(this.bosToken, "bos_token");
    const eos = tokenText(this.config.eos_token);
    if (eos === null)
      throw new Error(`${dir}/tokenizer_config.json: eos_token is required (the model must learn to stop)`);
    this.eosToken = eos;
    this.eosId = this.requireId(eos, "eos_token");
    const pad = tokenText(this.config.pad_token);
    // Pad positions carry label -100 and their own segment, so any id will do; eos when none is named.
    this.padId = pad === null ? this.eosId : this.requireId(pad, "pad_token");
  }

  private fastEncoder(json: TokenizerJson): WordCacheEncoder | null {
    if (unsupportedReason(json) !== null) return null;
    try {
      const fast = new WordCacheEncoder(json, this.tok);
      const specials = (json.added_tokens ?? []).slice(0, 4).map((t) => t.content);
      const probe = specials.join(PROBE) + PROBE;
      const same = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
      return same(fast.encode(probe), this.libraryEncode(probe)) ? fast : null;
    } catch {
      return null;
    }
  }

  /** whether encode runs the word-cached encoder (else the library's own) */
  get usesWordCache(): boolean {
    return this.fast !== null;
  }

  /** The library's encoder, always: the reference the word-cached one is held to. */
  libraryEncode(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  private requireId(token: string, what: string): number {
    const id = this.tok.token_to_id(token);
    if (id === undefined) throw new Error(`tokenizer: ${what} '${token}' is not in the vocabulary`);
    return id;
  }

  encode(text: string): number[] {
    return this.fast ? this.fast.encode(text) : this.libraryEncode(text);
  }

  decode(ids: ArrayLike<number>): string {
    return this.tok.decode(Array.from(ids), { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  encodeWithCuts(text: string, cuts: number[]): { ids: number[]; cutTokens: number[] } {
    const words = this.fast?.encodeWords(text);
    if (words) {
      // One encoding: a cut between words (or at a special token) counts the ids of the words before it.
      const cutTokens: number[] = [];
      let k = 0;
      for (const cut of cuts) {
        while (k < words.ends.length && words.ends[k] < cut) k++;
        if (cut === 0) cutTokens.push(0);
        else if (k < words.ends.length && words.ends[k] === cut) cutTokens.push(words.counts[k]);
        else if (cut >= text.length) cutTokens.push(words.ids.length);
        else break; // a cut inside a word: the general rule below
      }
      if (cutTokens.length === cuts.length) return { ids: words.ids, cutTokens };
    }
    return cutsByPieces((s) => this.encode(s), text, cuts);
  }
}
