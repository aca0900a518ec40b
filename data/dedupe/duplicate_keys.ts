// Exact-duplicate keys for records streamed through the pipeline: each record's key (a SHA-1 of its
// content) kept as 64 bits in flat typed arrays, with where it was first seen: 16 bytes a slot instead of
// a string in a Map (well over 100 bytes). Two different records share 64 bits with odds of about 1 in
// 10^7 at a billion records.
import { Buffer } from "node:buffer";

/** A record key's digest as the two 32-bit words a slot holds; never (x, 0), which marks an empty slot. */
export function keyWords(digest: Uint8Array): [number, number] {
  const b = Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength);
  return [b.readUInt32LE(0), b.readUInt32LE(4) || 1];
}

export class DuplicateKeys {
  private hi = new Uint32Array(1 << 12);
  private lo = new Uint32Array(1 << 12);
  private first = new Float64Array(1 << 12);
  private size = 0;

  private slot(hi: number, lo: number): number {
    const mask = this.hi.length - 1;
    let i = (hi ^ Math.imul(lo, 0x9e3779b1)) & mask;
    while ((this.hi[i] !== 0 || this.lo[i] !== 0) && (this.hi[i] !== hi || this.lo[i] !== lo)) i = (i + 1) & mask;
    return i;
  }

  /** Where the key given as its two words (keyWords) was first seen, or undefined. */
  getWords(hi: number, lo: number): number | undefined {
    const i = this.slot(hi, lo);
    return this.lo[i] === 0 ? undefined : this.first[i];
  }

  /** Remembers the key as first seen at `where` (a number below 2^53). */
  setWords(hi: number, lo: number, where: number): void {
    if (2 * (this.size + 1) > this.hi.length) this.grow();
    const i = this.slot(hi, lo);
    if (this.lo[i] === 0) this.size++;
    this.hi[i] = hi;
    this.lo[i] = lo;
    this.first[i] = where;
  }

  private grow(): void {
    const { hi, lo, first } = this;
    this.hi = new Uint32Array(hi.length * 2);
    this.lo = new Uint32Array(hi.length * 2);
    this.first = new Float64Array(hi.length * 2);
    for (let k = 0; k < hi.length; k++) {
      if (lo[k] === 0) continue;
      const i = this.slot(hi[k], lo[k]);
      this.hi[i] = hi[k];
      this.lo[i] = lo[k];
      this.first[i] = first[k];
    }
  }
}
