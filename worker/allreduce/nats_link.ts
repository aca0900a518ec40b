// Ring edges over NATS subjects: chunks for edge r->r+1 go on one subject, acks come back on another.
// Chunks are sized to stay under the server's max_payload, and the credit window above this link keeps
// the bytes a subscriber has pending bounded, so the server never cuts it off as a slow consumer.
// Core NATS drops messages nobody subscribes to, so before sending, each rank asks rank+1 (request/
// reply on the edge's hello subject) and rank+1 answers only after its chunk subscription is in place.
// With the ring's secret, hellos, chunks and acks are sealed (nats_seal.ts): any worker's NATS user may use
// the ring subjects, so what does not open with the secret is dropped unread.
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import {
  Chunk,
  ChunkAck,
  EdgeHello,
  EdgeHelloReply,
  decodeMessage,
  encodeChunk,
  encodeMessage,
  subjects,
} from "../../proto/mod.js";
import { deferred } from "./deferred.js";
import { PeerDisconnectedError, PeerSetupError } from "./errors.js";
import { NO_SEAL, ringSeal } from "./nats_seal.js";
import { DEFAULT_SETUP_TIMEOUT_MS, requestUntilServed } from "./request_retry.js";
import type { Link, LinkEvents } from "./transport.js";

export interface NatsLinkOptions {
  nc: NatsConnection;
  ring: string;
  rank: number;
  size: number;
  events: LinkEvents;
  setupTimeoutMs?: number;
  /** the ring's secret: every message is sealed with it and any that does not open is dropped */
  secret?: Uint8Array;
  /** told of each message dropped because it did not open with the secret */
  onRefused?: (why: string) => void;
}

/** Room left in a message for the chunk's head (version, tag up to 128 bytes, seq, padding) and its seal. */
const HEAD_ALLOWANCE_BYTES = 512;

export async function connectNatsLink(o: NatsLinkOptions): Promise<Link> {
  const { nc, ring, rank } = o;
  const next = (rank + 1) % o.size;
  const prev = (rank - 1 + o.size) % o.size;
  const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
  const maxChunkElements = Math.floor((maxPayload - HEAD_ALLOWANCE_BYTES) / 4);
  const subs: Subscription[] = [];
  const fail = (err: Error) => o.events.error(err);
  const sealer = o.secret ? ringSeal(o.secret) : NO_SEAL;
  const opened = (subject: string, data: Uint8Array): Uint8Array | undefined => {
    const plain = sealer.open(subject, data);
    if (!plain) o.onRefused?.(`ring ${ring}: dropped a message on ${subject} not sealed with the ring's secret`);
    return plain;
  };

  subs.push(...subscribeToEdges(o, prev, next, opened, fail));
  // rank-1's hello: answered once the subscriptions above are known to the server (flush below).
  const { helloFromPrev, helloSub } = answerHelloFromPrev(o, prev, opened);

  try {
    await nc.flush();
    // Both edges must come up; either failing (a peer of another version, say) fails the setup at once.
    await Promise.all([helloNext(o, next), helloFromPrev.promise]);
  } catch (err) {
    for (const s of subs) s.unsubscribe();
    throw err;
  } finally {
    helloSub.unsubscribe();
  }

  let closing = false;
  nc.closed().then(() => {
    if (!closing) fail(new PeerDisconnectedError(`ring ${ring}: rank ${rank}'s NATS connection closed`));
  });

  const chunkSubject = subjects.edgeChunks(ring, rank, next);
  const ackSubject = subjects.edgeAcks(ring, prev, rank);
  return {
    kind: "nats",
    maxChunkElements,
    sendChunk(tag, seq, data) {
      // One copy into the message; NATS needs the payload in one buffer.
      nc.publish(chunkSubject, sealer.seal(chunkSubject, encodeChunk(tag, seq, data)));
    },
    sendAck(tag, consumed) {
      nc.publish(ackSubject, sealer.seal(ackSubject, encodeMessage(ChunkAck, { tag, consumed })));
    },
    async close() {
      closing = true;
      for (const s of subs) s.unsubscribe();
    },
  };
}

async function helloNext(o: NatsLinkOptions, next: number): Promise<void> {
  const subject = subjects.edgeHello(o.ring, o.rank, next);
  const sealer = o.secret ? ringSeal(o.secret) : NO_SEAL;
  const reply = await requestUntilServed(
    o.nc,
    subject,
    sealer.seal(subject, encodeMessage(EdgeHello, { ring: o.ring, from: o.rank, to: next, transport: "nats" })),
    o.setupTimeoutMs ?? DEFAULT_SETUP_TIMEOUT_MS,
  );
  const answer = decodeMessage(EdgeHelloReply, reply.data);
  if (!answer.ok) throw new PeerSetupError(`rank ${next} of ring ${o.ring} refused rank ${o.rank}: ${answer.error}`);
}

/**
 * A message's bytes at a 4-byte aligned address: as they are, or copied into one reused buffer. A chunk's
 * floats sit at an aligned offset in the message, so they then decode as a view; a message lying at an
 * odd place in the client's read buffer would otherwise cost a fresh array per chunk in the decoder.
 */
class AlignedCopy {
  private buffer = new Uint8Array(0);

  of(bytes: Uint8Array): Uint8Array {
    if (bytes.byteOffset % 4 === 0) return bytes;
    if (this.buffer.length < bytes.length) this.buffer = new Uint8Array(bytes.length);
    this.buffer.set(bytes);
    return this.buffer.subarray(0, bytes.length);
  }
}

type OpenSealed = (subject: string, data: Uint8Array) => Uint8Array | undefined;

/** The two subscriptions of a rank's edges: chunks from rank-1, acknowledgements from rank+1. */
function subscribeToEdges(
  o: NatsLinkOptions,
  prev: number,
  next: number,
  opened: OpenSealed,
  fail: (err: Error) => void,
): Subscription[] {
  const { nc, ring, rank } = o;
  const align = new AlignedCopy();
  return [
    nc.subscribe(subjects.edgeChunks(ring, prev, rank), {
      callback: (err, msg) => {
        if (err) return fail(err);
        const plain = opened(msg.subject, msg.data);
        if (!plain) return;
        try {
          const m = decodeMessage(Chunk, align.of(plain));
          o.events.chunk(m.tag, m.seq, m.data);
        } catch (e) {
          fail(e as Error);
        }
      },
    }),
    nc.subscribe(subjects.edgeAcks(ring, rank, next), {
      callback: (err, msg) => {
        if (err) return fail(err);
        const plain = opened(msg.subject, msg.data);
        if (!plain) return;
        try {
          const m = decodeMessage(ChunkAck, plain);
          o.events.ack(m.tag, m.consumed);
        } catch (e) {
          fail(e as Error);
        }
      },
    }),
  ];
}

/** Answers rank-1's hello on this rank's incoming edge; the promise settles with the hello's outcome. */
function answerHelloFromPrev(
  o: NatsLinkOptions,
  prev: number,
  opened: OpenSealed,
): { helloFromPrev: ReturnType<typeof deferred<void>>; helloSub: Subscription } {
  const { nc, ring, rank } = o;
  const helloFromPrev = deferred<void>();
  const helloSub = nc.subscribe(subjects.edgeHello(ring, prev, rank), {
    callback: (err, msg) => {
      if (err) return helloFromPrev.reject(err);
      const plain = opened(msg.subject, msg.data);
      if (!plain) return;
      try {
        const hello = decodeMessage(EdgeHello, plain);
        if (hello.ring !== ring || hello.from !== prev || hello.to !== rank || hello.transport !== "nats") {
          throw new PeerSetupError(
            `rank ${rank} of ring ${ring} got a hello for edge ${hello.from}->${hello.to} over ${hello.transport}`,
          );
        }
        msg.respond(encodeMessage(EdgeHelloReply, { ok: true }));
        helloFromPrev.resolve();
      } catch (e) {
        msg.respond(encodeMessage(EdgeHelloReply, { ok: false, error: (e as Error).message }));
        helloFromPrev.reject(e as Error);
      }
    },
  });

  return { helloFromPrev, helloSub };
}
