// Exact duplicates among records streamed through the pipeline, found in bounded memory: each valid
// record's 64-bit content key goes with its ordinal to one of PARTITIONS files by the key's top bits;
// afterwards each file is read alone, in record order, into a hash table. A record is a duplicate of the
// first record with its key (unless tagged robustness); memory holds one partition, 1/128 of the keys.
import path from "node:path";
import { DuplicateKeys } from "./duplicate_keys.js";
import { Spill, uint32Spill } from "./spill.js";

const PARTITIONS = 128;
const BUFFER_BYTES = 1 << 14;
const ROBUST = 0x80000000;

/** Ordinals of the duplicate records, ascending, each with the ordinal of the record it repeats. */
export interface Duplicates {
  ordinals: Int32Array;
  firsts: Int32Array;
}

export class DuplicatePartitions {
  private readonly parts: Spill<Uint32Array>[];

  constructor(dir: string) {
    this.parts = Array.from({ length: PARTITIONS }, (_, p) =>
      uint32Spill(path.join(dir, `keys-${p}.tmp`), 3, BUFFER_BYTES),
    );
  }

  /** Record `ordinal` (ascending from call to call) has the key given as its two words. */
  add(hi: number, lo: number, ordinal: number, robust: boolean): void {
    if (ordinal >= ROBUST) throw new Error(`duplicate partitions: more than ${ROBUST} records`);
    const part = this.parts[hi >>> 25];
    const at = part.slot();
    part.buffer[at] = hi;
    part.buffer[at + 1] = lo;
    part.buffer[at + 2] = robust ? ordinal | ROBUST : ordinal;
  }

  /** Reads the partitions one at a time; removes their files. */
  resolve(): Duplicates {
    const ordinals: number[] = [];
    const firsts: number[] = [];
    for (const part of this.parts) {
      const seen = new DuplicateKeys();
      const reader = part.reader();
      const v = reader.view;
      for (let i = 0; i < reader.length; i++) {
        const at = reader.at(i);
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
      part.close();
    }
    const order = Array.from(ordinals.keys()).sort((a, b) => ordinals[a] - ordinals[b]);
    return {
      ordinals: Int32Array.from(order, (i) => ordinals[i]),
      firsts: Int32Array.from(order, (i) => firsts[i]),
    };
  }

  close(): void {
    for (const part of this.parts) part.close();
  }
}
