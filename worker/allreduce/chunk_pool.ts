// Reusable Float32Arrays for chunks that arrive before their all-reduce call has started reading them:
// the link lends each chunk only for the length of a callback, so such a chunk is copied, and the copy
// comes from here rather than from a fresh allocation (a 256 KiB array per chunk was ~8% of a rank's
// time in the garbage collector).

export class ChunkPool {
  private readonly free = new Map<number, Float32Array[]>();

  /** Keeps at most `perLength` spare arrays of each length. */
  constructor(private readonly perLength: number) {}

  /** A copy of `data` in a pooled array; give it back with `give` once it has been read. */
  copyOf(data: Float32Array): Float32Array {
    const out = this.free.get(data.length)?.pop() ?? new Float32Array(data.length);
    out.set(data);
    return out;
  }

  give(a: Float32Array): void {
    let list = this.free.get(a.length);
    if (!list) this.free.set(a.length, (list = []));
    if (list.length < this.perLength) list.push(a);
  }
}
