// The data-plane transport the ring all-reduce runs on. A transport connects one rank to its two ring
// neighbours: it sends to rank+1 and receives from rank-1. Calls are separated by tag, each with its
// own flow-control window, so buckets all-reduced one after another (or at once) never mix chunks.
import type { TransportKind } from "../../proto/mod.js";

export interface Transport {
  readonly kind: TransportKind;
  readonly rank: number;
  readonly size: number;
  /** Largest chunk, in float32 elements, one message may carry (NATS: under the server's max_payload). */
  readonly maxChunkElements: number;
  /** Starts the chunk streams of one all-reduce call; throws TagInUseError if the tag is open. */
  open(tag: string): TaggedStream;
  /** Closes the connections; pending and later operations reject with TransportClosedError. */
  close(): Promise<void>;
  /** Calls `listener` once with the error that broke the ring (a lost or silent neighbour), never for close(). */
  onBroken?(listener: (err: Error) => void): void;
}

export interface TaggedStream {
  /**
   * Sends the next chunk of this tag to rank+1, waiting first until the window has room. The transport
   * may keep a view of `data` rather than a copy: it must not change until finish() resolves.
   */
  send(data: Float32Array): Promise<void>;
  /**
   * Hands this tag's chunks from rank-1 to `sink.chunk`, in the order they were sent: at once those that
   * came before this call, then each synchronously as it arrives, so a chunk can be reduced straight from
   * the link's receive buffer. Call once per stream.
   */
  consume(sink: ChunkSink): void;
  /** Waits until rank+1 has consumed every chunk sent, then frees the tag. */
  finish(): Promise<void>;
  /** Gives up on this call: pending send/receive reject with `err`, and the tag is freed. */
  abort(err: Error): void;
}

export interface ChunkSink {
  /** The next chunk; lent for the call only (its memory is reused afterwards). A throw aborts the stream. */
  chunk(data: Float32Array): void;
  /** The stream failed: the transport failed, or `chunk` threw. Not called for the owner's own abort(). */
  fail(err: Error): void;
}

/** What a transport moves; the flow control above it is shared by every implementation. */
export interface Link {
  readonly kind: TransportKind;
  readonly maxChunkElements: number;
  /** Queues a chunk for rank+1; `data` is referenced, not copied, until it is written out. */
  sendChunk(tag: string, seq: number, data: Float32Array): void;
  /** Tells rank-1 how many chunks of `tag` this rank has consumed so far. */
  sendAck(tag: string, consumed: number): void;
  close(): Promise<void>;
}

/** Callbacks a link delivers to; set before the link carries anything. */
export interface LinkEvents {
  /** `data` is lent for the call only: the link may reuse its memory once this returns. */
  chunk(tag: string, seq: number, data: Float32Array): void;
  ack(tag: string, consumed: number): void;
  /** The link failed (peer gone, bad message); the transport fails every pending operation with `err`. */
  error(err: Error): void;
}
