// Direct TCP between ring neighbours: each rank listens for rank+1 and connects to rank-1, so there is
// one connection per ring edge. Chunks flow forward on it (from the accepting rank to the connecting
// one), acks flow back on the same socket. The receiver of the chunks is the side that connects because
// only a connecting socket can read into a buffer of its own (net.connect's `onread`): chunks are then
// framed and reduced straight out of one reused buffer, where a 'data' listener gets a freshly allocated
// buffer per 64 KiB read (most of a rank's garbage collection). Addresses are exchanged over NATS, sealed
// with the ring's secret (peer_address.ts); the first frame each way is a hello, sent by the receiving end,
// that checks the ring, the edge, the protocol version and (ring_auth.ts) that both ends hold the secret.
import { createServer, connect as tcpConnect, type Server, type Socket } from "node:net";
import { networkInterfaces } from "node:os";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  Chunk,
  ChunkAck,
  EdgeHello,
  EdgeHelloReply,
  decodeMessage,
  encodeChunkParts,
  encodeMessage,
  lostLinkMessage,
  type Message,
} from "../../proto/mod.js";
import { deferred } from "./deferred.js";
import { PeerDisconnectedError, PeerSetupError } from "./errors.js";
import { FrameReader, MAX_FRAME_BYTES, framePrefix } from "./frames.js";
import { lookupPeerAddress, servePeerAddress } from "./peer_address.js";
import { DEFAULT_SETUP_TIMEOUT_MS } from "./request_retry.js";
import { edgeMac, edgeMacValid, newHelloNonce } from "./ring_auth.js";
import type { Link, LinkEvents } from "./transport.js";

export interface TcpLinkOptions {
  nc: NatsConnection;
  ring: string;
  rank: number;
  size: number;
  events: LinkEvents;
  /** Interface to listen on; default all. */
  listenHost?: string;
  /** Address the neighbour connects to; default this host's first external IPv4 address. */
  advertiseHost?: string;
  setupTimeoutMs?: number;
  /** the ring's secret: both sides of every edge prove they hold it (see ring_auth.ts) */
  secret?: Uint8Array;
  /** told of each connection refused during setup (the ring goes on waiting for its peer) */
  onRefused?: (why: string) => void;
}

/** Floats per chunk frame: any size the frame limit allows (the chunk size is the caller's choice). */
const MAX_CHUNK_ELEMENTS = Math.floor((MAX_FRAME_BYTES - 1024) / 4);

/** The chunk receiver's read buffer: one read takes up to this much of what the kernel holds. */
const READ_BUFFER_BYTES = 1024 * 1024;

/**
 * TCP keepalive probes start after this much idle time: a neighbour whose host vanished (no FIN, no RST) is
 * then noticed by the kernel even with nothing to send. A stopped process is caught by the keepalives above.
 */
const KEEPALIVE_IDLE_MS = 10_000;

export async function connectTcpLink(o: TcpLinkOptions): Promise<Link> {
  const next = (o.rank + 1) % o.size;
  const prev = (o.rank - 1 + o.size) % o.size;
  const deadlineMs = o.setupTimeoutMs ?? DEFAULT_SETUP_TIMEOUT_MS;
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, o.listenHost ?? "0.0.0.0", () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  const addressSub = servePeerAddress(
    o.nc,
    o.ring,
    o.rank,
    { host: o.advertiseHost ?? externalHost(), port },
    { secret: o.secret, onRefused: o.onRefused },
  );
  let closing = false;
  const opened: Socket[] = []; // destroyed if setup fails
  const lost = (which: string) => () => {
    if (!closing) o.events.error(new PeerDisconnectedError(lostLinkMessage(o.ring, o.rank, which)));
  };

  const refusals: { last?: string } = {};
  const timeout = setupDeadline(
    deadlineMs,
    () =>
      `ring ${o.ring}: rank ${o.rank} did not get both neighbours connected` +
      (refusals.last ? ` (last connection refused: ${refusals.last})` : ""),
  );
  try {
    const [inbound, outbound] = await Promise.race([
      Promise.all([connectPrev(o, prev, deadlineMs, opened), acceptNext(server, o, next, opened, refusals)]),
      timeout.promise,
    ]);
    // Strangers still connected when the ring formed are of no use to it.
    for (const s of opened) if (s !== inbound && s !== outbound) s.destroy();
    inbound.on("close", lost(`from rank ${prev}`));
    outbound.on("close", lost(`to rank ${next}`));
    return {
      kind: "tcp",
      maxChunkElements: MAX_CHUNK_ELEMENTS,
      sendChunk(tag, seq, data) {
        const { head, payload } = encodeChunkParts(tag, seq, data);
        // cork: prefix+head and payload leave in one writev, and the payload is never copied in JS.
        outbound.cork();
        outbound.write(concat(framePrefix(head.length + payload.length), head));
        if (payload.length > 0) outbound.write(payload);
        outbound.uncork();
      },
      sendAck(tag, consumed) {
        inbound.write(frame(encodeMessage(ChunkAck, { tag, consumed })));
      },
      async close() {
        closing = true;
        await Promise.all([endSocket(outbound), endSocket(inbound)]);
      },
    };
  } catch (err) {
    closing = true;
    // Let a refusal reply go out before the socket is torn down.
    for (const s of opened) s.end();
    throw err;
  } finally {
    timeout.cancel();
    addressSub.unsubscribe();
    server.close();
  }
}

/** A hello is a few hundred bytes: until one is accepted, no larger frame is read from a socket. */
const MAX_HELLO_FRAME_BYTES = 4096;

/**
 * Waits for rank+1's connection; its hello must name this edge and our protocol version and, in a ring with
 * a secret, prove it holds the secret. Acks come back on it. A connection that fails any check (a stranger,
 * a port scanner, a peer of another ring) is refused and closed alone: the wait goes on for the real peer,
 * so a stray connection cannot fail the ring.
 */
function acceptNext(
  server: Server,
  o: TcpLinkOptions,
  next: number,
  opened: Socket[],
  refusals: { last?: string },
): Promise<Socket> {
  const done = deferred<Socket>();
  let accepted = false;
  server.on("connection", (socket) => {
    opened.push(socket);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_IDLE_MS);
    let state: "hello" | "ready" | "refused" = "hello";
    const refuse = (why: string, err: Error = new PeerSetupError(why)) => {
      state = "refused";
      refusals.last = why;
      o.onRefused?.(`rank ${o.rank} of ring ${o.ring} refused a connection from ${socket.remoteAddress}: ${why}`);
      socket.end(frame(encodeMessage(EdgeHelloReply, { ok: false, error: why })));
      setTimeout(() => socket.destroy(), 1000).unref();
      // Without a secret nothing tells a stranger from a misconfigured peer: fail at once with the reason,
      // as a ring of trusted test processes wants. With one, only a peer that proves it counts.
      if (!o.secret) done.reject(err);
    };
    const reader = new FrameReader((bytes) => {
      if (state === "ready") {
        const m = decodeMessage(ChunkAck, bytes);
        o.events.ack(m.tag, m.consumed);
      } else if (state === "hello") {
        let hello: Message<typeof EdgeHello>;
        try {
          hello = decodeMessage(EdgeHello, bytes);
        } catch (err) {
          return refuse((err as Error).message, err as Error);
        }
        if (hello.ring !== o.ring || hello.from !== o.rank || hello.to !== next) {
          return refuse(
            `rank ${o.rank} of ring ${o.ring} expected rank ${next}, got a hello for ring ${hello.ring} edge ${hello.from}->${hello.to}`,
          );
        }
        if (o.secret && !edgeMacValid(o.secret, "hello", hello, hello.nonce, hello.mac)) {
          return refuse(`the hello does not prove the secret of ring ${o.ring}`);
        }
        if (accepted) return refuse(`rank ${o.rank} of ring ${o.ring} already has its peer`);
        accepted = true;
        state = "ready";
        reader.maxFrameBytes = MAX_FRAME_BYTES;
        const mac = o.secret && hello.nonce ? edgeMac(o.secret, "accept", hello, hello.nonce) : undefined;
        socket.write(frame(encodeMessage(EdgeHelloReply, { ok: true, mac })));
        done.resolve(socket);
      }
    }, MAX_HELLO_FRAME_BYTES);
    // Before its hello is accepted a socket's errors are its own; after, they are the ring's.
    const onError = (err: Error) => {
      if (state === "ready") o.events.error(err);
      else if (state === "hello") refuse(err.message, err);
    };
    socket.on("data", (buf) => feed(reader, buf, socket, onError));
    socket.on("error", onError);
  });
  return done.promise;
}

/** Connects to rank-1, whose chunks then arrive on this socket, read into one reused buffer. */
async function connectPrev(o: TcpLinkOptions, prev: number, deadlineMs: number, opened: Socket[]): Promise<Socket> {
  const addr = await lookupPeerAddress(o.nc, o.ring, o.rank, prev, {
    deadlineMs,
    secret: o.secret,
    onRefused: o.onRefused,
  });
  const edge = { ring: o.ring, from: prev, to: o.rank, transport: "tcp" as const };
  const nonce = o.secret ? newHelloNonce() : undefined;
  const hello = { ...edge, nonce, mac: o.secret && nonce ? edgeMac(o.secret, "hello", edge, nonce) : undefined };
  const accepted = deferred<Socket>();
  let ready = false;
  const reader = new FrameReader((bytes) => {
    if (ready) {
      const m = decodeMessage(Chunk, bytes);
      o.events.chunk(m.tag, m.seq, m.data);
      return;
    }
    const reply = decodeMessage(EdgeHelloReply, bytes);
    if (!reply.ok) throw new PeerSetupError(`rank ${prev} of ring ${o.ring} refused rank ${o.rank}: ${reply.error}`);
    if (o.secret && !edgeMacValid(o.secret, "accept", hello, hello.nonce, reply.mac))
      throw new PeerSetupError(`the listener at rank ${prev}'s address does not prove the secret of ring ${o.ring}`);
    ready = true;
    accepted.resolve(socket);
  });
  const onError = (err: Error) => (ready ? o.events.error(err) : accepted.reject(err));
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = tcpConnect(
      {
        port: addr.port,
        host: addr.host,
        noDelay: true,
        keepAlive: true,
        keepAliveInitialDelay: KEEPALIVE_IDLE_MS,
        onread: {
          buffer: new Uint8Array(READ_BUFFER_BYTES),
          callback: (bytes, buf) => {
            feed(reader, buf.subarray(0, bytes), s, onError);
            return true;
          },
        },
      },
      () => resolve(s),
    );
    opened.push(s);
    s.once("error", reject);
  });
  socket.on("error", onError);
  socket.write(frame(encodeMessage(EdgeHello, hello)));
  return accepted.promise;
}

/** Passes bytes to the frame reader; a throw from it goes to `onError` and ends the socket. */
function feed(reader: FrameReader, buf: Uint8Array, socket: Socket, onError: (err: Error) => void): void {
  try {
    reader.push(buf);
  } catch (err) {
    onError(err as Error);
    socket.destroy();
  }
}

function frame(body: Uint8Array): Uint8Array {
  return concat(framePrefix(body.length), body);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** A peer that is stopped (not dead) never closes its side: after this long the socket is destroyed. */
const CLOSE_GRACE_MS = 2000;

function endSocket(s: Socket): Promise<void> {
  if (s.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const grace = setTimeout(() => s.destroy(), CLOSE_GRACE_MS);
    s.once("close", () => {
      clearTimeout(grace);
      resolve();
    });
    s.end();
  });
}

function setupDeadline(ms: number, what: () => string) {
  let timer: NodeJS.Timeout;
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PeerSetupError(`${what()} within ${ms} ms`)), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

export function externalHost(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return "127.0.0.1";
}
