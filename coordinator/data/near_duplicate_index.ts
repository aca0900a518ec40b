// Near-duplicate detection one record at a time, for records streamed through the pipeline: the same
// MinHash bands and threshold as findNearDuplicates, with band keys kept as 53-bit numbers in flat typed
// arrays rather than strings in Maps: about 320 bytes a record instead of well over a kilobyte.
import { estimatedJaccard } from "./dedupe.js";
import { SIGNATURE_WORDS } from "./token_pool.js";

const BANDS = 8;
const ROWS = SIGNATURE_WORDS / BANDS;

/** Four 32-bit words mixed into one 53-bit number: collisions only add candidates, which are then checked. */
function bandKey(sig: Uint32Array, at: number): number {
  let hi = 0x811c9dc5;
  let lo = 0x9747b28c;
  for (let k = at; k < at + ROWS; k++) {
    hi = Math.imul(hi ^ sig[k], 0x01000193);
    lo = Math.imul(lo ^ sig[k], 0x5bd1e995) ^ (lo >>> 13);
  }
  return (hi >>> 0) * 0x200000 + (lo >>> 11);
}

/** Open addressing over typed arrays: number keys (never 0 after the +1 below) to record ids. */
class NumberTable {
  private keys = new Float64Array(1024);
  private values = new Int32Array(1024);
  private size = 0;

  private slot(key: number): number {
    const mask = this.keys.length - 1;
    let i = (key ^ (key / 0x100000000)) & mask;
    while (this.keys[i] !== 0 && this.keys[i] !== key) i = (i + 1) & mask;
    return i;
  }

  get(key: number): number | undefined {
    const i = this.slot(key + 1);
    return this.keys[i] === 0 ? undefined : this.values[i];
  }

  set(key: number, value: number): void {
    if (2 * (this.size + 1) > this.keys.length) this.grow();
    const i = this.slot(key + 1);
    if (this.keys[i] === 0) this.size++;
    this.keys[i] = key + 1;
    this.values[i] = value;
  }

  private grow(): void {
    const { keys, values } = this;
    this.keys = new Float64Array(keys.length * 2);
    this.values = new Int32Array(keys.length * 2);
    for (let i = 0; i < keys.length; i++) {
      if (keys[i] === 0) continue;
      const j = this.slot(keys[i]);
      this.keys[j] = keys[i];
      this.values[j] = values[i];
    }
  }
}

export class NearDuplicateIndex {
  private readonly buckets = Array.from({ length: BANDS }, () => new NumberTable());
  private sigs = new Uint32Array(SIGNATURE_WORDS * 1024);
  private count = 0;

  constructor(private readonly threshold = 0.8) {}

  /**
   * Adds record `id` (ids ascend from 0, one per call) with its signature or null; returns the earlier
   * record it nearly duplicates, with the estimated Jaccard, or null.
   */
  add(id: number, sig: Uint32Array | null): { similarTo: number; jaccard: number } | null {
    if (id !== this.count) throw new Error(`near-duplicate index: record ${id} added out of order`);
    this.count++;
    if ((id + 1) * SIGNATURE_WORDS > this.sigs.length) {
      const grown = new Uint32Array(this.sigs.length * 2);
      grown.set(this.sigs);
      this.sigs = grown;
    }
    if (!sig) return null;
    this.sigs.set(sig, id * SIGNATURE_WORDS);
    let best: { similarTo: number; jaccard: number } | null = null;
    for (let b = 0; b < BANDS; b++) {
      const key = bandKey(sig, b * ROWS);
      const j = this.buckets[b].get(key);
      if (j !== undefined) {
        const jac = estimatedJaccard(sig, this.sigs.subarray(j * SIGNATURE_WORDS, (j + 1) * SIGNATURE_WORDS));
        if (jac >= this.threshold && (!best || jac > best.jaccard)) best = { similarTo: j, jaccard: jac };
      } else this.buckets[b].set(key, id);
    }
    return best;
  }
}
