// A typed array that grows as numbers are pushed: per-record bookkeeping at 4 or 8 bytes a number, where a
// plain array of numbers costs more and leaves the garbage collector more to walk.
export class Growable<T extends Int32Array | Float64Array> {
  private data: T;
  length = 0;

  constructor(private readonly make: (n: number) => T) {
    this.data = make(1024);
  }

  push(v: number): void {
    if (this.length === this.data.length) {
      const bigger = this.make(2 * this.data.length);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = v;
  }

  at(i: number): number {
    return this.data[i];
  }

  /** The pushed numbers (a view: valid until the next push). */
  view(): T {
    return this.data.subarray(0, this.length) as T;
  }
}

export const growingInt32s = () => new Growable((n) => new Int32Array(n));
export const growingFloat64s = () => new Growable((n) => new Float64Array(n));
