// The built-in tokenizer for models trained from scratch: ids 0..255 are UTF-8 bytes, then one id per
// special token (<s>, </s>, <pad>, then the template's markers), so a template marker is one token.
import { createHash } from "node:crypto";
import type { TextTokenizer } from "./tokenizer.js";

export const BYTE_BASE_SPECIALS = ["<s>", "</s>", "<pad>"] as const;

export class ByteTokenizer implements TextTokenizer {
  readonly kind = "byte" as const;
  readonly specials: string[];
  readonly vocabSize: number;
  readonly bosToken: string = "<s>";
  readonly eosToken: string = "</s>";
  readonly bosId = 256;
  readonly eosId = 257;
  readonly padId = 258;
  readonly fingerprint: string;
  private readonly specialIds = new Map<string, number>();
  private readonly splitter: RegExp | null;

  constructor(templateSpecials: readonly string[] = []) {
    this.specials = [...BYTE_BASE_SPECIALS];
    for (const s of templateSpecials) if (!this.specials.includes(s)) this.specials.push(s);
    this.specials.forEach((s, i) => this.specialIds.set(s, 256 + i));
    this.vocabSize = 256 + this.specials.length;
    // Longest first so that a special token that is a prefix of another never wins.
    const alts = [...this.specials].sort((a, b) => b.length - a.length).map(escapeRegExp);
    this.splitter = alts.length ? new RegExp(`(${alts.join("|")})`) : null;
    this.fingerprint = createHash("sha256")
      .update(`byte:${this.specials.join("\u0000")}`)
      .digest("hex");
  }

  tokenId(special: string): number | undefined {
    return this.specialIds.get(special);
  }

  encode(text: string): number[] {
    const ids: number[] = [];
    const parts = this.splitter ? text.split(this.splitter) : [text];
    // split() with a capture group alternates plain text (even) and special tokens (odd).
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (i % 2 === 1) ids.push(this.specialIds.get(p)!);
      else if (p.length) for (const b of Buffer.from(p, "utf8")) ids.push(b);
    }
    return ids;
  }

  decode(ids: ArrayLike<number>): string {
    let out = "";
    let bytes: number[] = [];
    const flush = () => {
      if (bytes.length) out += Buffer.from(bytes).toString("utf8");
      bytes = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id < 256) bytes.push(id);
      else {
        flush();
        out += this.specials[id - 256] ?? `<unk:${id}>`;
      }
    }
    flush();
    return out;
  }

  /** Every cut that does not fall inside a special token is a token boundary here. */
  encodeWithCuts(text: string, cuts: number[]): { ids: number[]; cutTokens: number[] } {
    const ids: number[] = [];
    const cutTokens: number[] = [];
    let prev = 0;
    for (const cut of cuts) {
      for (const id of this.encode(text.slice(prev, cut))) ids.push(id);
      cutTokens.push(ids.length);
      prev = cut;
    }
    for (const id of this.encode(text.slice(prev))) ids.push(id);
    return { ids, cutTokens };
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
