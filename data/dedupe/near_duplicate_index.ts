// Near-duplicate detection one record at a time, for records streamed through the pipeline: MinHash
// signatures compared band by band (estimated Jaccard 0.8 or more by default), in memory that does not
// grow with the dataset. Band keys go into one fixed-size table (a slot holds the band key and the first
// record seen with it; a full slot keeps its record, so past the table's capacity some near-copies go
// unreported, never wrongly reported), and signatures are written to a file and read back only for the
// candidates a band finds.
import { closeSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { estimatedJaccard, MINHASH_BANDS as BANDS, MINHASH_ROWS as ROWS, SIGNATURE_WORDS } from "./dedupe.js";

/** Slots of the band table: 8 bytes each, 32 MiB, about 4 M records' bands before recall drops. */
export const DEFAULT_BAND_SLOTS = 1 << 22;
/** Signatures kept in memory before they are appended to the file. */
const SIGNATURES_PER_FLUSH = 4096;
/** Signatures read back from the file kept in a direct-mapped cache (8 MiB): the candidates a band finds are
 * mostly the few records that first had a common band, read again and again. */
const CACHED_SIGNATURES = 1 << 16;
/** Probes before a band key gives up on finding a slot (the table is then treated as full there). */
const MAX_PROBES = 8;

/** A band's four words (and the band's number) mixed into 32 bits, never 0 (0 marks an empty slot). */
function bandKey(sig: Uint32Array, band: number): number {
  let h = Math.imul(band + 1, 0x9e3779b1);
  for (let k = band * ROWS; k < (band + 1) * ROWS; k++) {
    h = Math.imul(h ^ sig[k], 0x01000193);
    h ^= h >>> 15;
  }
  return h >>> 0 || 1;
}

export class NearDuplicateIndex {
  private readonly keys: Uint32Array;
  private readonly records: Int32Array;
  private readonly pending = new Uint32Array(SIGNATURE_WORDS * SIGNATURES_PER_FLUSH);
  private flushed = 0; // records whose signatures are in the file
  private count = 0;
  private readonly fd: number;
  private readonly cachedIds = new Int32Array(CACHED_SIGNATURES).fill(-1);
  private readonly cached = new Uint32Array(CACHED_SIGNATURES * SIGNATURE_WORDS);

  /** `file`: where signatures are spilled (created, and removed by close). */
  constructor(
    private readonly file: string,
    private readonly threshold = 0.8,
    slots = DEFAULT_BAND_SLOTS,
  ) {
    if (slots & (slots - 1)) throw new Error(`near-duplicate index: slots must be a power of two, got ${slots}`);
    this.keys = new Uint32Array(slots);
    this.records = new Int32Array(slots);
    // O_EXCL: never written through something already at its name (a planted link)
    this.fd = openSync(file, "wx+");
  }

  /**
   * Adds record `id` (ids ascend from 0, one per call) with its signature or null; returns the earlier
   * record it nearly duplicates, with the estimated Jaccard, or null.
   */
  add(id: number, sig: Uint32Array | null): { similarTo: number; jaccard: number } | null {
    if (id !== this.count) throw new Error(`near-duplicate index: record ${id} added out of order`);
    this.count++;
    this.store(id, sig);
    if (!sig) return null;
    let best: { similarTo: number; jaccard: number } | null = null;
    const mask = this.keys.length - 1;
    for (let b = 0; b < BANDS; b++) {
      const key = bandKey(sig, b);
      for (let probe = 0, i = key & mask; probe < MAX_PROBES; probe++, i = (i + 1) & mask) {
        if (this.keys[i] === 0) {
          this.keys[i] = key;
          this.records[i] = id;
          break;
        }
        if (this.keys[i] !== key) continue;
        const j = this.records[i];
        const jac = estimatedJaccard(sig, this.signature(j));
        if (jac >= this.threshold && (!best || jac > best.jaccard)) best = { similarTo: j, jaccard: jac };
        break;
      }
    }
    return best;
  }

  private store(id: number, sig: Uint32Array | null): void {
    const at = (id - this.flushed) * SIGNATURE_WORDS;
    if (sig) this.pending.set(sig, at);
    else this.pending.fill(0, at, at + SIGNATURE_WORDS);
    if (id + 1 - this.flushed === SIGNATURES_PER_FLUSH) {
      writeSync(this.fd, this.pending, 0, this.pending.byteLength, this.flushed * SIGNATURE_WORDS * 4);
      this.flushed += SIGNATURES_PER_FLUSH;
    }
  }

  private signature(j: number): Uint32Array {
    if (j >= this.flushed)
      return this.pending.subarray((j - this.flushed) * SIGNATURE_WORDS, (j - this.flushed + 1) * SIGNATURE_WORDS);
    const slot = j & (CACHED_SIGNATURES - 1);
    const sig = this.cached.subarray(slot * SIGNATURE_WORDS, (slot + 1) * SIGNATURE_WORDS);
    if (this.cachedIds[slot] !== j) {
      readSync(this.fd, sig, 0, sig.byteLength, j * SIGNATURE_WORDS * 4);
      this.cachedIds[slot] = j;
    }
    return sig;
  }

  close(): void {
    closeSync(this.fd);
    rmSync(this.file, { force: true });
  }
}
