// What makes two records duplicates: the digest of an exact copy's content, and the MinHash signature of a
// response, whose near-copies are reported for a person to judge.
import { createHash } from "node:crypto";
import type { DataRecord } from "../../text/records/records.js";

/** The SHA-1 of a record's content (what makes two records the same), as bytes. */
export function recordDigest(r: DataRecord): Buffer {
  const body =
    r.kind === "text"
      ? ["text", r.text]
      : [
          "chat",
          r.messages.map((m) => [m.role, m.content, m.toolCalls ?? null, m.name ?? null, m.reasoning_content ?? null]),
          r.tools ?? null,
        ];
  return createHash("sha1").update(JSON.stringify(body)).digest();
}

/** The text duplicates are judged on: the answers (prompts repeat by design; answers should not). */
export function responseText(r: DataRecord): string {
  if (r.kind === "text") return r.text;
  return r.messages
    .filter((m) => m.role === "assistant")
    .map((m) => m.content)
    .join("\n");
}

const SHINGLE = 5; // characters, so Chinese text without spaces works the same as English
/** MinHash bands: a pair becomes a near-duplicate candidate when all of one band's words agree. */
export const MINHASH_BANDS = 8;
/** Words per band: with 8 bands of 4, pairs with Jaccard 0.8 become candidates with probability 0.98. */
export const MINHASH_ROWS = 4;
/** MinHash signature length in 32-bit words. */
export const SIGNATURE_WORDS = MINHASH_BANDS * MINHASH_ROWS;
const SEEDS = Array.from(
  { length: SIGNATURE_WORDS },
  (_, k) => [Math.imul(k + 1, 0x9e3779b1) | 1, Math.imul(k + 7, 0x85ebca6b)] as const,
);
const SEED_MUL = Int32Array.from(SEEDS, (s) => s[0]);
const SEED_ADD = Int32Array.from(SEEDS, (s) => s[1]);

export function minhash(text: string): Uint32Array | null {
  const s = text.replace(/\s+/g, " ").trim().toLowerCase();
  if (s.length < SHINGLE + 8) return null; // too short for similarity to mean anything
  // Each shingle hashed once, then one tight loop per permutation over those hashes: the same signature
  // as hashing shingle by shingle, in about two thirds of the time.
  const shingles = new Int32Array(s.length - SHINGLE + 1);
  for (let i = 0; i < shingles.length; i++) {
    let h = 2166136261;
    for (let j = i; j < i + SHINGLE; j++) h = Math.imul(h ^ s.charCodeAt(j), 16777619);
    shingles[i] = h;
  }
  const sig = new Uint32Array(SIGNATURE_WORDS);
  for (let k = 0; k < SIGNATURE_WORDS; k++) {
    const mul = SEED_MUL[k];
    const add = SEED_ADD[k];
    let min = 0xffffffff;
    for (let i = 0; i < shingles.length; i++) {
      let x = (Math.imul(shingles[i], mul) + add) | 0;
      x ^= x >>> 15;
      x = Math.imul(x, 0x2c1b3c6d);
      x ^= x >>> 12;
      if (x >>> 0 < min) min = x >>> 0;
    }
    sig[k] = min;
  }
  return sig;
}

export function estimatedJaccard(a: Uint32Array, b: Uint32Array): number {
  let same = 0;
  for (let k = 0; k < a.length; k++) if (a[k] === b[k]) same++;
  return same / a.length;
}
