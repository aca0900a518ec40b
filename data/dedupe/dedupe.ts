// Duplicates: exact copies are removed (the first seen is kept); near-copies of a response (MinHash)
// are reported for a person to judge. Records tagged "robustness" are kept as they are, on purpose.
import { createHash } from "node:crypto";
import type { DataRecord, Source } from "../../text/records/records.js";
import { ROBUSTNESS_TAG } from "../../text/records/records.js";

export function recordKey(r: DataRecord): string {
  return recordDigest(r).toString("base64");
}

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

export interface DuplicateReport {
  kept: DataRecord[];
  /** removed records and the record each repeats */
  removed: { record: DataRecord; firstSeen: Source }[];
}

export function removeExactDuplicates(records: DataRecord[]): DuplicateReport {
  const seen = new Map<string, Source>();
  const kept: DataRecord[] = [];
  const removed: DuplicateReport["removed"] = [];
  for (const r of records) {
    const key = recordKey(r);
    const first = seen.get(key);
    if (first && !r.tags.includes(ROBUSTNESS_TAG)) removed.push({ record: r, firstSeen: first });
    else {
      if (!first) seen.set(key, r.source);
      kept.push(r);
    }
  }
  return { kept, removed };
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
const BANDS = 8;
const ROWS = 4; // 32 hashes; pairs with Jaccard 0.8 become candidates with probability 0.98
const HASHES = BANDS * ROWS;
const SEEDS = Array.from(
  { length: HASHES },
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
  const sig = new Uint32Array(HASHES);
  for (let k = 0; k < HASHES; k++) {
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

export interface NearDuplicate {
  record: DataRecord;
  similarTo: Source;
  jaccard: number;
}

/** Each record whose response is close (estimated Jaccard >= threshold) to an earlier record's. */
export function findNearDuplicates(records: DataRecord[], threshold = 0.8): NearDuplicate[] {
  const buckets: Map<string, number>[] = Array.from({ length: BANDS }, () => new Map());
  const sigs: (Uint32Array | null)[] = [];
  const out: NearDuplicate[] = [];
  records.forEach((r, i) => {
    const sig = minhash(responseText(r));
    sigs.push(sig);
    if (!sig) return;
    let best: { j: number; jac: number } | null = null;
    for (let b = 0; b < BANDS; b++) {
      const key = Array.from(sig.subarray(b * ROWS, (b + 1) * ROWS)).join(",");
      const j = buckets[b].get(key);
      if (j !== undefined) {
        const jac = estimatedJaccard(sig, sigs[j]!);
        if (jac >= threshold && (!best || jac > best.jac)) best = { j, jac };
      } else buckets[b].set(key, i);
    }
    if (best && !r.tags.includes(ROBUSTNESS_TAG))
      out.push({ record: r, similarTo: records[best.j].source, jaccard: best.jac });
  });
  return out;
}
