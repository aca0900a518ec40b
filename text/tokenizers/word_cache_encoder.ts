// A faster encoder for byte-level BPE tokenizer.json files (GPT-2, Qwen, Llama 3 families): the text is split
// at special tokens and into pre-token words as the tokenizer does, and each word's ids are cached, so the
// BPE merges run once per distinct word rather than once per occurrence. Words also give token counts at
// character cuts for free (a cut between words), so a rendered chat is encoded once, not once per part.
// It is used only for configurations it reproduces (checked on a probe text at construction); any other
// tokenizer.json keeps the library's own encoder.
import type { Tokenizer } from "@huggingface/tokenizers";

interface AddedToken {
  id: number;
  content: string;
  lstrip?: boolean;
  rstrip?: boolean;
  single_word?: boolean;
}

export interface TokenizerJson {
  normalizer?: { type: string } | null;
  pre_tokenizer?: {
    type: string;
    use_regex?: boolean;
    add_prefix_space?: boolean;
    pretokenizers?: {
      type: string;
      behavior?: string;
      invert?: boolean;
      use_regex?: boolean;
      add_prefix_space?: boolean;
    }[];
  } | null;
  model?: { type: string; dropout?: number | null };
  added_tokens?: AddedToken[];
}

/** The library's parts the fast path drives: its compiled split pattern and its BPE model. */
interface LibraryInternals {
  pre_tokenizer: { pattern?: RegExp; tokenizers?: { pattern?: RegExp }[] };
  model: ((tokens: string[]) => string[]) & { tokens_to_ids: Map<string, number>; unk_token_id?: number };
}

/** Cached words before the cache starts over: bounds its memory on corpora with endless distinct words. */
const CACHE_WORDS = 200_000;

const BYTE_TO_CHAR: string[] = (() => {
  // GPT-2's byte-to-printable-character table.
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const table: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(bs.includes(b) ? b : 256 + extra++);
  return table;
})();

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Why this tokenizer.json is outside the fast path, or null when it is inside. */
export function unsupportedReason(json: TokenizerJson): string | null {
  if (json.model?.type !== "BPE" || json.model.dropout) return "model is not BPE without dropout";
  if (json.normalizer && json.normalizer.type !== "NFC") return `normalizer ${json.normalizer.type}`;
  const pre = json.pre_tokenizer;
  if (!pre) return "no pre-tokenizer";
  const byteLevelOnly = pre.type === "ByteLevel" && pre.use_regex !== false && !pre.add_prefix_space;
  const p = pre.pretokenizers ?? [];
  const splitThenBytes =
    pre.type === "Sequence" &&
    p.length === 2 &&
    p[0].type === "Split" &&
    p[0].behavior === "Isolated" &&
    !p[0].invert &&
    p[1].type === "ByteLevel" &&
    p[1].use_regex === false &&
    !p[1].add_prefix_space;
  if (!byteLevelOnly && !splitThenBytes) return `pre-tokenizer ${pre.type}`;
  if ((json.added_tokens ?? []).some((t) => t.lstrip || t.rstrip || t.single_word))
    return "added tokens that strip spaces";
  return null;
}

export class WordCacheEncoder {
  private readonly cache = new Map<string, number[]>();
  private readonly special: Map<string, number>;
  private readonly specialPattern: RegExp | null;
  private readonly wordPattern: RegExp;
  private readonly nfc: boolean;
  private readonly lib: LibraryInternals;
  private readonly utf8 = new TextEncoder();

  constructor(json: TokenizerJson, tok: Tokenizer) {
    this.lib = tok as unknown as LibraryInternals;
    const pre = this.lib.pre_tokenizer;
    const pattern = json.pre_tokenizer?.type === "Sequence" ? pre.tokenizers?.[0]?.pattern : pre.pattern;
    if (!(pattern instanceof RegExp)) throw new Error("tokenizer: no compiled pre-tokenizer pattern");
    this.wordPattern = new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : pattern.flags + "g");
    this.nfc = json.normalizer?.type === "NFC";
    const added = json.added_tokens ?? [];
    this.special = new Map(added.map((t) => [t.content, t.id]));
    // Longest first, so a token that begins another never wins over it.
    const contents = added.map((t) => t.content).sort((a, b) => b.length - a.length);
    this.specialPattern = contents.length ? new RegExp(contents.map(escapeRegExp).join("|"), "g") : null;
  }

  /**
   * Ids of the text, and the character offset (in the text as given) where each word or special token ends,
   * with the number of ids up to that point; null when normalisation changed the text (offsets would not
   * match it).
   */
  encodeWords(text: string): { ids: number[]; ends: number[]; counts: number[] } | null {
    const ids: number[] = [];
    const ends: number[] = [];
    const counts: number[] = [];
    let changed = false;
    const section = (from: number, to: number) => {
      if (to <= from) return;
      let s = text.slice(from, to);
      if (this.nfc) {
        const n = s.normalize("NFC");
        if (n !== s) changed = true;
        s = n;
      }
      let prev = 0;
      const word = (a: number, b: number) => {
        for (const id of this.wordIds(s.slice(a, b))) ids.push(id);
        ends.push(from + b);
        counts.push(ids.length);
      };
      for (const m of s.matchAll(this.wordPattern)) {
        if (prev < m.index) word(prev, m.index);
        if (m[0].length > 0) word(m.index, m.index + m[0].length);
        prev = m.index + m[0].length;
      }
      if (prev < s.length) word(prev, s.length);
    };
    let at = 0;
    if (this.specialPattern) {
      for (const m of text.matchAll(this.specialPattern)) {
        section(at, m.index);
        ids.push(this.special.get(m[0])!);
        at = m.index + m[0].length;
        ends.push(at);
        counts.push(ids.length);
      }
    }
    section(at, text.length);
    return changed ? null : { ids, ends, counts };
  }

  encode(text: string): number[] {
    return this.encodeWords(text)?.ids ?? this.encodeWordsLoose(text);
  }

  /** Ids when normalisation changed the text: the same words, without offsets. */
  private encodeWordsLoose(text: string): number[] {
    const ids: number[] = [];
    let at = 0;
    const section = (s: string) => {
      if (!s) return;
      if (this.nfc) s = s.normalize("NFC");
      let prev = 0;
      for (const m of s.matchAll(this.wordPattern)) {
        if (prev < m.index) ids.push(...this.wordIds(s.slice(prev, m.index)));
        if (m[0].length > 0) ids.push(...this.wordIds(m[0]));
        prev = m.index + m[0].length;
      }
      if (prev < s.length) ids.push(...this.wordIds(s.slice(prev)));
    };
    if (this.specialPattern)
      for (const m of text.matchAll(this.specialPattern)) {
        section(text.slice(at, m.index));
        ids.push(this.special.get(m[0])!);
        at = m.index + m[0].length;
      }
    section(text.slice(at));
    return ids;
  }

  private wordIds(word: string): number[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    let mapped = "";
    for (const b of this.utf8.encode(word)) mapped += BYTE_TO_CHAR[b];
    const model = this.lib.model;
    const ids = model([mapped]).map(
      (t) => this.special.get(t) ?? model.tokens_to_ids.get(t) ?? model.unk_token_id ?? 0,
    );
    if (this.cache.size >= CACHE_WORDS) this.cache.clear();
    this.cache.set(word, ids);
    return ids;
  }
}
