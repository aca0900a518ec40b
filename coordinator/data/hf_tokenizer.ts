// A Hugging Face tokenizer.json (+ tokenizer_config.json for special tokens and the chat template),
// run by @huggingface/tokenizers.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { cutsByPieces, type TextTokenizer } from "./tokenizer.js";

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
  return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as TokenizerConfig) : {};
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

  constructor(dir: string) {
    const jsonFile = path.join(dir, "tokenizer.json");
    if (!existsSync(jsonFile)) throw new Error(`no tokenizer.json in ${dir}`);
    const jsonText = readFileSync(jsonFile, "utf8");
    this.config = readTokenizerConfig(dir);
    this.tok = new Tokenizer(JSON.parse(jsonText), this.config);
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

  private requireId(token: string, what: string): number {
    const id = this.tok.token_to_id(token);
    if (id === undefined) throw new Error(`tokenizer: ${what} '${token}' is not in the vocabulary`);
    return id;
  }

  encode(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: ArrayLike<number>): string {
    return this.tok.decode(Array.from(ids), { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  encodeWithCuts(text: string, cuts: number[]): { ids: number[]; cutTokens: number[] } {
    return cutsByPieces((s) => this.encode(s), text, cuts);
  }
}
