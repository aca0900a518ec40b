// Ring all-reduce (sum) of a Float32Array in place: reduce-scatter, then all-gather, over 2(n-1) steps.
// Either half runs alone too (ZeRO-1): ringReduceScatter leaves rank r with the sum of its owned segment
// only (ownedSpan), and ringAllGather copies each rank's owned segment to every rank.
// At step s rank r sends segment sendSegment(r, s) to r+1 and receives segment sendSegment(r, s+1) from
// r-1; after the n-1 reduce-scatter steps rank r holds the full sum of segment r+1, and the all-gather
// copies each finished segment around the ring. Each segment's sum is formed once, in one order, and
// copied verbatim, so every rank ends with bit-identical results.
//
// Pipelining: each segment is cut into chunks, and chunk k received at step s is forwarded at step s+1
// as soon as it is reduced, without waiting for the rest of the segment. A sender loop runs beside a
// sink that the transport calls as each chunk arrives; the transport's window bounds the chunks in flight.
//
// Memory safety of zero-copy sends: a chunk is sent as a view of `data`. After it is sent, its region is
// only written again in the all-gather, by a value that already includes this rank's sent contribution,
// so it cannot arrive before the sent bytes have left; and the call returns only after rank+1 has
// consumed every chunk (finish()), so the caller may change `data` as soon as the promise resolves.
import { addInto } from "./add_into.js";
import { deferred, type Deferred } from "./deferred.js";
import { chunksOf, mod, segment, type Span } from "./partition.js";
import type { Transport } from "./transport.js";

/** 256 KiB of fp32 per message: small enough to pipeline 4 MB buffers, large enough to amortise. */
export const DEFAULT_CHUNK_ELEMENTS = 64 * 1024;

export interface AllReduceOptions {
  /** Elements per chunk; capped by the transport's largest message. */
  chunkElements?: number;
}

/** The tag for bucket `bucket` of step `step`: unique per call, as concurrent calls need. */
export function allReduceTag(step: number, bucket: number): string {
  return `s${step}-b${bucket}`;
}

/** Segment rank r sends at step s (0 <= s < 2(n-1)); it receives sendSegment(r, s+1) at step s. */
function sendSegment(r: number, s: number, n: number): number {
  return s < n - 1 ? mod(r - s, n) : mod(r + 1 - (s - (n - 1)), n);
}

/**
 * The segment of a buffer of `length` elements that rank `rank` of `n` holds summed after a reduce-scatter
 * and contributes to an all-gather: segment r+1 (mod n), where the all-reduce's schedule leaves it.
 */
export function ownedSpan(length: number, rank: number, n: number): Span {
  return segment(length, n, mod(rank + 1, n));
}

export async function ringAllReduce(
  transport: Transport,
  data: Float32Array,
  tag: string,
  options: AllReduceOptions = {},
): Promise<void> {
  return ringSteps(transport, data, tag, options, "all");
}

/** The reduce-scatter half: afterwards ownedSpan(data.length, rank, size) of `data` holds the ring's sum. */
export async function ringReduceScatter(
  transport: Transport,
  data: Float32Array,
  tag: string,
  options: AllReduceOptions = {},
): Promise<void> {
  return ringSteps(transport, data, tag, options, "reduce-scatter");
}

/** The all-gather half: every rank's ownedSpan of `data` is copied, bit for bit, to every other rank. */
export async function ringAllGather(
  transport: Transport,
  data: Float32Array,
  tag: string,
  options: AllReduceOptions = {},
): Promise<void> {
  return ringSteps(transport, data, tag, options, "all-gather");
}

type RingPhase = "all" | "reduce-scatter" | "all-gather";

async function ringSteps(
  transport: Transport,
  data: Float32Array,
  tag: string,
  options: AllReduceOptions,
  phase: RingPhase,
): Promise<void> {
  const n = transport.size;
  if (n === 1) return;
  const r = transport.rank;
  const chunk = Math.min(options.chunkElements ?? DEFAULT_CHUNK_ELEMENTS, transport.maxChunkElements);
  if (!Number.isInteger(chunk) || chunk < 1)
    throw new RangeError(`chunkElements must be an integer >= 1, got ${chunk}`);

  // Steps [first, last) of the all-reduce's schedule: n-1 reduce-scatter steps, then n-1 all-gather steps.
  const first = phase === "all-gather" ? n - 1 : 0;
  const last = phase === "reduce-scatter" ? n - 1 : 2 * (n - 1);
  const chunksAt = (s: number): Span[] => chunksOf(segment(data.length, n, sendSegment(r, s, n)), chunk);
  const stream = transport.open(tag);
  const received = new Progress();

  // Either side failing must stop the other, or it would wait for ever.
  let failure: Error | undefined;
  const fail = (err: Error) => {
    failure ??= err;
    received.fail(err);
    stream.abort(err);
  };

  const sendLoop = async () => {
    let before = 0; // chunks received before the step this send forwards from
    for (let s = first; s < last; s++) {
      const spans = chunksAt(s);
      for (let k = 0; k < spans.length; k++) {
        // The first step sends this rank's own values; later steps forward chunk k received at step s-1.
        if (s > first) await received.reach(before + k + 1);
        await stream.send(data.subarray(spans[k]!.start, spans[k]!.end));
      }
      if (s > first) before += spans.length;
    }
  };

  // What arrives, in order: at step s the chunks of sendSegment(r, s+1), summed in during the
  // reduce-scatter (s < n-1) and copied in during the all-gather. Each chunk is applied the moment the
  // link has it, straight from the link's buffer.
  const expected: Span[] = [];
  let reduceCount = 0;
  for (let s = first; s < last; s++) {
    const spans = chunksAt(s + 1);
    expected.push(...spans);
    if (s < n - 1) reduceCount += spans.length;
  }
  const allReceived = deferred<void>();
  if (expected.length === 0) allReceived.resolve();
  let next = 0;
  stream.consume({
    chunk: (incoming) => {
      const span = expected[next];
      if (span === undefined) throw new RangeError(`tag '${tag}': more chunks than the ${expected.length} expected`);
      const { start, end } = span;
      if (incoming.length !== end - start) {
        throw new RangeError(
          `tag '${tag}': chunk of ${incoming.length} elements, expected ${end - start}; do all ranks pass the same length?`,
        );
      }
      if (next < reduceCount) {
        addInto(data.subarray(start, end), incoming);
      } else {
        data.set(incoming, start);
      }
      next++;
      received.advance();
      if (next === expected.length) allReceived.resolve();
    },
    fail: (err) => {
      fail(err);
      allReceived.reject(err);
    },
  });

  try {
    await Promise.all([sendLoop().catch((err) => fail(err)), allReceived.promise.catch((err) => fail(err))]);
    if (failure) throw failure;
    await stream.finish();
  } catch (err) {
    if (!failure) stream.abort(err as Error);
    throw err;
  }
}

/** A counter another loop can wait on. */
class Progress {
  private value = 0;
  private target = 0;
  private waiter: Deferred<void> | null = null;
  private error: Error | null = null;

  advance(): void {
    this.value++;
    if (this.waiter && this.value >= this.target) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve();
    }
  }

  async reach(target: number): Promise<void> {
    if (this.error) throw this.error;
    if (this.value >= target) return;
    this.target = target;
    this.waiter = deferred();
    await this.waiter.promise;
  }

  fail(err: Error): void {
    this.error = err;
    this.waiter?.reject(err);
  }
}
