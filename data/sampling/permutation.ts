// A seeded random permutation of 0..n-1 that maps one index at a time, in constant memory: a balanced
// Feistel network over the smallest even power of two covering n, walked until the image falls inside
// (each step lands inside with odds above 1/4). Shuffling through it needs no array of n entries, so a
// dataset of any size is shuffled by reading its items where the permutation points.
import { subSeed } from "../../spec/rng.js";

const ROUNDS = 4;

export class Permutation {
  private readonly halfBits: number;
  private readonly mask: number;
  private readonly keys: number[];

  constructor(
    readonly size: number,
    seed: number,
  ) {
    if (!Number.isSafeInteger(size) || size < 0 || size > 2 ** 52)
      throw new Error(`permutation: size must be an integer in 0..2^52, got ${size}`);
    let bits = 2;
    while (2 ** bits < size) bits += 2;
    this.halfBits = bits / 2;
    this.mask = 2 ** this.halfBits - 1;
    this.keys = Array.from({ length: ROUNDS }, (_, r) => subSeed(seed, `feistel:${r}`));
  }

  /** The image of i (0 <= i < size). */
  at(i: number): number {
    if (!(i >= 0 && i < this.size)) throw new RangeError(`permutation: index ${i} outside 0..${this.size - 1}`);
    let x = i;
    do x = this.encrypt(x);
    while (x >= this.size);
    return x;
  }

  private encrypt(x: number): number {
    const side = 2 ** this.halfBits;
    let left = Math.floor(x / side);
    let right = x % side;
    for (const key of this.keys) {
      const next = (left ^ this.round(right, key)) & this.mask;
      left = right;
      right = next;
    }
    return left * side + right;
  }

  /** A 32-bit mix of a half (up to 26 bits) with the round's key. */
  private round(half: number, key: number): number {
    let h = Math.imul(half ^ key, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h ^ (key >>> 7), 0xc2b2ae35);
    h ^= h >>> 16;
    return h >>> 0;
  }
}
