// Exact duplicates among records streamed through the pipeline, found in bounded memory: each valid
// record's 64-bit content key goes with its ordinal to one of PARTITIONS files by the key's top bits;
// afterwards each file is read alone, in record order, into a hash table. A record is a duplicate of the
// first record with its key (unless tagged robustness); memory holds one partition, 1/128 of the keys.
import { closeSync, constants, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { DuplicateKeys } from "./duplicate_keys.js";

const PARTITIONS = 128;
/** Keys buffered per partition before they are appended to its file (12 bytes each: 3 MiB in all). */
const BUFFER_ENTRIES = 1 << 11;
const ROBUST = 0x80000000;
const APPEND_NO_LINK = constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW;

/** Ordinals of the duplicate records, ascending, each with the ordinal of the record it repeats. */
export interface Duplicates {
  ordinals: Int32Array;
  firsts: Int32Array;
}

export class DuplicatePartitions {
  private readonly buffers: Uint32Array[] = [];
  private readonly buffered = new Int32Array(PARTITIONS); // entries in each buffer
  private readonly written = new Uint8Array(PARTITIONS); // 1: the partition's file exists

  /** `dir`: where the partition files go (a folder of this build's own). */
  constructor(private readonly dir: string) {
    for (let p = 0; p < PARTITIONS; p++) this.buffers.push(new Uint32Array(BUFFER_ENTRIES * 3));
  }

  private file(p: number): string {
    return path.join(this.dir, `keys-${p}.tmp`);
  }

  /** Record `ordinal` (ascending from call to call) has the key given as its two words. */
  add(hi: number, lo: number, ordinal: number, robust: boolean): void {
    if (ordinal >= ROBUST) throw new Error(`duplicate partitions: more than ${ROBUST} records`);
    const p = hi >>> 25;
    if (this.buffered[p] === BUFFER_ENTRIES) this.flush(p);
    const at = 3 * this.buffered[p]++;
    const buf = this.buffers[p];
    buf[at] = hi;
    buf[at + 1] = lo;
    buf[at + 2] = robust ? ordinal | ROBUST : ordinal;
  }

  /** Appends partition p's buffer to its file, opened only for the write: 128 files hold no descriptors. */
  private flush(p: number): void {
    const bytes = Buffer.from(this.buffers[p].buffer, 0, 12 * this.buffered[p]);
    // "wx" the first time, O_NOFOLLOW after: never written through a link planted at the name.
    const fd = openSync(this.file(p), this.written[p] ? APPEND_NO_LINK : "wx");
    try {
      writeFileSync(fd, bytes);
    } finally {
      closeSync(fd);
    }
    this.written[p] = 1;
    this.buffered[p] = 0;
  }

  /** Reads the partitions one at a time (each file whole: 1/128 of the keys); removes their files. */
  resolve(): Duplicates {
    const ordinals: number[] = [];
    const firsts: number[] = [];
    for (let p = 0; p < PARTITIONS; p++) {
      let v = this.buffers[p].subarray(0, 3 * this.buffered[p]);
      if (this.written[p]) {
        this.flush(p);
        const fd = openSync(this.file(p), constants.O_RDONLY | constants.O_NOFOLLOW);
        let b: Buffer;
        try {
          b = readFileSync(fd);
        } finally {
          closeSync(fd);
        }
        v = new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4);
        rmSync(this.file(p), { force: true });
        this.written[p] = 0;
      }
      const seen = new DuplicateKeys();
      for (let at = 0; at < v.length; at += 3) {
        const hi = v[at];
        const lo = v[at + 1];
        const ordinal = v[at + 2] & ~ROBUST;
        const first = seen.getWords(hi, lo);
        if (first === undefined) seen.setWords(hi, lo, ordinal);
        else if (!(v[at + 2] & ROBUST)) {
          ordinals.push(ordinal);
          firsts.push(first);
        }
      }
      this.buffered[p] = 0;
    }
    const order = Array.from(ordinals.keys()).sort((a, b) => ordinals[a] - ordinals[b]);
    return {
      ordinals: Int32Array.from(order, (i) => ordinals[i]),
      firsts: Int32Array.from(order, (i) => firsts[i]),
    };
  }

  /** Removes the partition files (after resolve, nothing is left to remove). */
  close(): void {
    for (let p = 0; p < PARTITIONS; p++) if (this.written[p]) rmSync(this.file(p), { force: true });
  }
}
