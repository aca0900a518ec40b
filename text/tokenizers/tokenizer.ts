// What the pipeline needs from a tokenizer: ids for text, and where given character cuts fall in them.
export interface TextTokenizer {
  readonly kind: "byte" | "hf";
  readonly vocabSize: number;
  /** begin-of-sequence text (a special token) or null when the tokenizer has none (Qwen) */
  readonly bosToken: string | null;
  readonly eosToken: string;
  readonly bosId: number | null;
  readonly eosId: number;
  readonly padId: number;
  /** identifies everything that decides the ids, for the cache key */
  readonly fingerprint: string;
  /** ids for text with special tokens recognised where they appear and none added */
  encode(text: string): number[];
  decode(ids: ArrayLike<number>): string;
  /**
   * Ids for text, plus for each cut (a character offset, ascending) the number of tokens that lie
   * wholly before it. A token that straddles a cut counts as after it.
   */
  encodeWithCuts(text: string, cuts: number[]): { ids: number[]; cutTokens: number[] };
}

/**
 * Token counts at cuts for any tokenizer, exactly as the whole text tokenizes: first the pieces between
 * cuts are encoded and, when they concatenate to the whole text's ids (the usual case: templates cut at
 * special tokens and word starts), their lengths are the answer. Otherwise (a cut inside a BPE word, a
 * SentencePiece prefix space) each cut's count is the common prefix of encode(text[0:cut]) with the
 * whole text's ids: the tokens the model sees are always those of the whole text.
 */
export function cutsByPieces(
  enc: (s: string) => number[],
  text: string,
  cuts: number[],
): { ids: number[]; cutTokens: number[] } {
  const ids = enc(text);
  const cutTokens: number[] = [];
  let prev = 0;
  let count = 0;
  let aligned = true;
  for (const cut of cuts) {
    const piece = enc(text.slice(prev, cut));
    for (let i = 0; i < piece.length && aligned; i++) if (ids[count + i] !== piece[i]) aligned = false;
    if (!aligned) break;
    count += piece.length;
    cutTokens.push(count);
    prev = cut;
  }
  if (aligned) {
    const tail = enc(text.slice(prev));
    aligned = count + tail.length === ids.length && tail.every((t, i) => ids[count + i] === t);
  }
  if (aligned) return { ids, cutTokens };
  return { ids, cutTokens: cuts.map((cut) => commonPrefix(enc(text.slice(0, cut)), ids)) };
}

function commonPrefix(a: number[], b: number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}
