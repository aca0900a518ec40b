// Fixed-width records of numbers appended to a file through a fixed buffer, and read back in order or by
// index: the per-record and per-example bookkeeping of the streamed pipeline, which grows with the
// dataset, lives on disk this way while memory holds one buffer per file.
import { closeSync, openSync, readSync, rmSync, writeSync } from "node:fs";

type Numbers = Int32Array | Float64Array | Uint32Array;

const BUFFER_BYTES = 1 << 18;

export class Spill<T extends Numbers> {
  private readonly fd: number;
  /** Records not yet written: fill one through `slot()`. */
  readonly buffer: T;
  private readonly capacity: number; // records the buffer holds
  private buffered = 0;
  private flushed = 0;
  private readonly one: T;
  private closed = false;

  constructor(
    readonly file: string,
    readonly width: number,
    private readonly make: (n: number) => T,
    bufferBytes = BUFFER_BYTES,
  ) {
    this.capacity = Math.max(1, Math.floor(bufferBytes / (width * make(0).BYTES_PER_ELEMENT)));
    this.buffer = make(this.capacity * width);
    this.one = make(width);
    // O_EXCL: a spill never writes through something already at its name (a link planted there).
    this.fd = openSync(file, "wx+");
  }

  get length(): number {
    return this.flushed + this.buffered;
  }

  /** Appends a record and returns where its numbers go in `buffer` (valid until the next slot). */
  slot(): number {
    if (this.buffered === this.capacity) this.flush();
    return this.buffered++ * this.width;
  }

  /** Appends a record given whole. */
  push(values: ArrayLike<number>): void {
    const at = this.slot();
    for (let f = 0; f < this.width; f++) this.buffer[at + f] = values[f];
  }

  flush(): void {
    if (!this.buffered) return;
    const bytes = this.buffered * this.width * this.buffer.BYTES_PER_ELEMENT;
    writeSync(this.fd, this.buffer, 0, bytes, this.flushed * this.width * this.buffer.BYTES_PER_ELEMENT);
    this.flushed += this.buffered;
    this.buffered = 0;
  }

  /** Record i's numbers (a shared view: valid until the next call). */
  read(i: number): T {
    if (!(i >= 0 && i < this.length)) throw new RangeError(`${this.file}: record ${i} of ${this.length}`);
    if (i >= this.flushed)
      return this.buffer.subarray((i - this.flushed) * this.width, (i - this.flushed + 1) * this.width) as T;
    const size = this.width * this.one.BYTES_PER_ELEMENT;
    readSync(this.fd, this.one, 0, size, i * size);
    return this.one;
  }

  /** Reads records in ascending order (skipping ahead allowed) through a buffer of its own. */
  reader(): SpillReader<T> {
    this.flush();
    return new SpillReader(this.fd, this.width, this.make, this.length, this.capacity);
  }

  /** Closes the file, keeping it (`keep`) or removing it. */
  close(keep = false): void {
    if (this.closed) return;
    this.closed = true;
    this.flush();
    closeSync(this.fd);
    if (!keep) rmSync(this.file, { force: true });
  }
}

export class SpillReader<T extends Numbers> {
  private readonly buf: T;
  private first = 0; // record held at the buffer's start
  private held = 0;

  constructor(
    private readonly fd: number,
    private readonly width: number,
    make: (n: number) => T,
    readonly length: number,
    private readonly capacity: number,
  ) {
    this.buf = make(capacity * width);
  }

  /** Where record i's numbers lie in `view` (i never below an earlier call's). */
  at(i: number): number {
    if (i < this.first) throw new Error(`spill reader: record ${i} read after ${this.first}`);
    if (i >= this.first + this.held) {
      if (i >= this.length) throw new RangeError(`spill reader: record ${i} of ${this.length}`);
      const bytesPer = this.width * this.buf.BYTES_PER_ELEMENT;
      const n = Math.min(this.capacity, this.length - i);
      readSync(this.fd, this.buf, 0, n * bytesPer, i * bytesPer);
      this.first = i;
      this.held = n;
    }
    return (i - this.first) * this.width;
  }

  get view(): T {
    return this.buf;
  }
}

export const int32Spill = (file: string, width: number, bufferBytes?: number) =>
  new Spill(file, width, (n) => new Int32Array(n), bufferBytes);
export const float64Spill = (file: string, width: number, bufferBytes?: number) =>
  new Spill(file, width, (n) => new Float64Array(n), bufferBytes);
