// Credit-based flow control over any Link: per tag, a sender has at most `window` chunks the receiver
// has not consumed yet, and the receiver acknowledges consumption. So a receiver never holds more than
// `window` chunks per open tag (no unbounded buffers), NATS never sees a slow consumer, and a tag that is
// not being read yet (a later bucket) cannot block the link for the others: the link is always drained.
// Chunks of a tag being read go straight from the link's buffer to the reader (no copy, no allocation);
// only those that arrive before their tag is read are copied, into pooled arrays.
import { ChunkPool } from "./chunk_pool.js";
import { deferred, type Deferred } from "./deferred.js";
import { ChunkOrderError, TagInUseError, TransportClosedError } from "./errors.js";
import { KEEPALIVE_TAG, PeerLiveness, type PeerLivenessOptions } from "./peer_liveness.js";
import type { ChunkSink, Link, LinkEvents, TaggedStream, Transport } from "./transport.js";

export const DEFAULT_WINDOW = 8;

const NO_FLOATS = new Float32Array(0);

interface Outgoing {
  sent: number;
  acked: number;
  credit: Deferred<void> | null; // waits for acked to grow
}

interface Incoming {
  next: number; // seq expected next
  queue: Float32Array[]; // pooled copies of chunks that came before consume()
  sink: ChunkSink | null;
  abort: ((err: Error) => void) | null; // the stream's, for a sink that throws
  consumed: number;
  ackScheduled: boolean;
}

export class CreditedTransport implements Transport {
  private link: Link | null = null;
  private readonly outgoing = new Map<string, Outgoing>();
  private readonly incoming = new Map<string, Incoming>();
  private readonly openTags = new Set<string>();
  private failure: Error | null = null;
  private brokenListener: ((err: Error) => void) | undefined;
  private readonly pool: ChunkPool;
  private readonly liveness: PeerLiveness | undefined;

  /** Connect the link with these; chunks that arrive before attach() are queued like any other. */
  readonly events: LinkEvents = {
    chunk: (tag, seq, data) => this.onChunk(tag, seq, data),
    ack: (tag, consumed) => this.onAck(tag, consumed),
    error: (err) => this.fail(err),
  };

  constructor(
    readonly rank: number,
    readonly size: number,
    readonly window = DEFAULT_WINDOW,
    /** fail every pending and later operation once a neighbour is silent this long (see peer_liveness.ts) */
    peerTimeout?: Pick<PeerLivenessOptions, "timeoutMs" | "describePeer">,
  ) {
    if (!Number.isInteger(window) || window < 1) throw new RangeError(`window must be an integer >= 1, got ${window}`);
    this.pool = new ChunkPool(2 * window);
    if (peerTimeout && peerTimeout.timeoutMs > 0 && size > 1)
      this.liveness = new PeerLiveness({ ...peerTimeout, rank, size });
  }

  attach(link: Link): this {
    this.link = link;
    this.liveness?.start(
      () => {
        if (this.failure) return;
        link.sendChunk(KEEPALIVE_TAG, 0, NO_FLOATS);
        link.sendAck(KEEPALIVE_TAG, 0);
      },
      (err) => this.fail(err),
    );
    return this;
  }

  get kind() {
    return this.connected().kind;
  }

  get maxChunkElements() {
    return this.connected().maxChunkElements;
  }

  private connected(): Link {
    if (!this.link) throw new Error("CreditedTransport used before attach(link)");
    return this.link;
  }

  open(tag: string): TaggedStream {
    if (this.failure) throw this.failure;
    const link = this.connected();
    if (this.openTags.has(tag)) throw new TagInUseError(tag);
    const out: Outgoing = { sent: 0, acked: 0, credit: null };
    this.outgoing.set(tag, out);
    const inc = this.incomingFor(tag);
    let aborted: Error | null = null;
    const release = () => {
      this.openTags.delete(tag);
      this.outgoing.delete(tag);
      this.incoming.delete(tag);
    };
    const stream: TaggedStream = {
      send: async (data) => {
        while (out.sent - out.acked >= this.window) {
          this.check(aborted);
          out.credit = deferred();
          await out.credit.promise;
        }
        this.check(aborted);
        link.sendChunk(tag, out.sent++, data);
      },
      consume: (sink) => {
        this.check(aborted);
        if (inc.sink) throw new Error(`tag '${tag}': consume() called twice`);
        inc.sink = sink;
        inc.abort = stream.abort;
        const early = inc.queue;
        inc.queue = [];
        for (const data of early) {
          if (inc.sink) this.deliver(tag, inc, data);
          this.pool.give(data);
        }
      },
      finish: async () => {
        while (out.acked < out.sent) {
          this.check(aborted);
          out.credit = deferred();
          await out.credit.promise;
        }
        release();
        if (inc.queue.length > 0) {
          throw new ChunkOrderError(
            `tag '${tag}': ${inc.queue.length} chunk(s) left unread; tags must be unique per call`,
          );
        }
      },
      abort: (err) => {
        if (aborted) return;
        aborted = err;
        out.credit?.reject(err);
        inc.sink = null;
        release();
      },
    };
    this.openTags.add(tag);
    return stream;
  }

  onBroken(listener: (err: Error) => void): void {
    this.brokenListener = listener;
  }

  async close(): Promise<void> {
    this.brokenListener = undefined; // closing is no breakage
    this.fail(new TransportClosedError(`${this.kind} transport of rank ${this.rank} is closed`));
    await this.link?.close();
  }

  private check(aborted: Error | null): void {
    if (this.failure) throw this.failure;
    if (aborted) throw aborted;
  }

  private incomingFor(tag: string): Incoming {
    let inc = this.incoming.get(tag);
    if (!inc) {
      inc = { next: 0, queue: [], sink: null, abort: null, consumed: 0, ackScheduled: false };
      this.incoming.set(tag, inc);
    }
    return inc;
  }

  private onChunk(tag: string, seq: number, data: Float32Array): void {
    this.liveness?.heardFromPrev();
    if (tag === KEEPALIVE_TAG) return;
    const inc = this.incomingFor(tag);
    if (seq !== inc.next) {
      return this.fail(new ChunkOrderError(`tag '${tag}': chunk ${seq} arrived, expected ${inc.next}`));
    }
    inc.next++;
    if (inc.sink) return this.deliver(tag, inc, data);
    if (inc.queue.length >= this.window) {
      return this.fail(
        new ChunkOrderError(`tag '${tag}': rank ${this.rank} received more than the window of ${this.window} chunks`),
      );
    }
    inc.queue.push(this.pool.copyOf(data)); // `data` is only lent to us
  }

  private deliver(tag: string, inc: Incoming, data: Float32Array): void {
    const sink = inc.sink!;
    try {
      sink.chunk(data);
    } catch (err) {
      inc.abort?.(err as Error);
      sink.fail(err as Error);
      return;
    }
    inc.consumed++;
    this.scheduleAck(tag, inc);
  }

  private onAck(tag: string, consumed: number): void {
    this.liveness?.heardFromNext();
    if (tag === KEEPALIVE_TAG) return;
    const out = this.outgoing.get(tag);
    if (!out || consumed <= out.acked) return; // acks are cumulative; a late duplicate changes nothing
    out.acked = Math.min(consumed, out.sent);
    const c = out.credit;
    out.credit = null;
    c?.resolve();
  }

  /** Acks are coalesced: one per tag per turn of the event loop, carrying the running count. */
  private scheduleAck(tag: string, inc: Incoming): void {
    if (inc.ackScheduled) return;
    inc.ackScheduled = true;
    setImmediate(() => {
      inc.ackScheduled = false;
      if (!this.failure) this.link?.sendAck(tag, inc.consumed);
    });
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.liveness?.stop();
    const broken = this.brokenListener;
    if (broken) queueMicrotask(() => broken(err));
    for (const out of this.outgoing.values()) out.credit?.reject(err);
    for (const inc of this.incoming.values()) {
      const sink = inc.sink;
      inc.sink = null;
      sink?.fail(err);
    }
  }
}
