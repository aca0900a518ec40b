// Direct TCP between ring neighbours: each rank listens for rank+1 and connects to rank-1, so there is
// one connection per ring edge. Chunks flow forward on it (from the accepting rank to the connecting
// one), acks flow back on the same socket. The receiver of the chunks is the side that connects because
// only a connecting socket can read into a buffer of its own (net.connect's `onread`): chunks are then
// framed and reduced straight out of one reused buffer, where a 'data' listener gets a freshly allocated
// buffer per 64 KiB read (most of a rank's garbage collection). Addresses are exchanged over NATS
// (peer_address.ts); the first frame each way is a hello, sent by the receiving end, that checks the
// ring, the edge and the protocol version.
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
  type Message,
} from "../../proto/mod.js";
import { deferred } from "./deferred.js";
import { PeerDisconnectedError, PeerSetupError } from "./errors.js";
import { FrameReader, MAX_FRAME_BYTES, framePrefix } from "./frames.js";
import { lookupPeerAddress, servePeerAddress } from "./peer_address.js";
import { DEFAULT_SETUP_TIMEOUT_MS } from "./request_retry.js";
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
}

/** Floats per chunk frame: any size the frame limit allows (the chunk size is the caller's choice). */
const MAX_CHUNK_ELEMENTS = Math.floor((MAX_FRAME_BYTES - 1024) / 4);

/** The chunk receiver's read buffer: one read takes up to this much of what the kernel holds. */
const READ_BUFFER_BYTES = 1024 * 1024;

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
  const addressSub = servePeerAddress(o.nc, o.ring, o.rank, { host: o.advertiseHost ?? externalHost(), port });
  let closing = false;
  const opened: Socket[] = []; // destroyed if setup fails
  const lost = (which: string) => () => {
    if (!closing)
      o.events.error(new PeerDisconnectedError(`ring ${o.ring}: rank ${o.rank} lost its connection ${which}`));
  };

  const timeout = setupDeadline(deadlineMs, `ring ${o.ring}: rank ${o.rank} did not get both neighbours connected`);
  try {
    const [inbound, outbound] = await Promise.race([
      Promise.all([connectPrev(o, prev, deadlineMs, opened), acceptNext(server, o, next, opened)]),
      timeout.promise,
    ]);
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

/** Waits for rank+1's connection; its hello must name this edge and our protocol version. Acks come back on it. */
function acceptNext(server: Server, o: TcpLinkOptions, next: number, opened: Socket[]): Promise<Socket> {
  const done = deferred<Socket>();
  server.on("connection", (socket) => {
    opened.push(socket);
    socket.setNoDelay(true);
    let state: "hello" | "ready" | "refused" = "hello";
    const refuse = (err: Error) => {
      state = "refused";
      socket.end(frame(encodeMessage(EdgeHelloReply, { ok: false, error: err.message })));
      done.reject(err);
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
          return refuse(err as Error);
        }
        if (hello.ring !== o.ring || hello.from !== o.rank || hello.to !== next) {
          return refuse(
            new PeerSetupError(
              `rank ${o.rank} of ring ${o.ring} expected rank ${next}, got a hello for ring ${hello.ring} edge ${hello.from}->${hello.to}`,
            ),
          );
        }
        state = "ready";
        socket.write(frame(encodeMessage(EdgeHelloReply, { ok: true })));
        done.resolve(socket);
      }
    });
    const onError = (err: Error) => (state === "ready" ? o.events.error(err) : done.reject(err));
    socket.on("data", (buf) => feed(reader, buf, socket, onError));
    socket.on("error", onError);
  });
  return done.promise;
}

/** Connects to rank-1, whose chunks then arrive on this socket, read into one reused buffer. */
async function connectPrev(o: TcpLinkOptions, prev: number, deadlineMs: number, opened: Socket[]): Promise<Socket> {
  const addr = await lookupPeerAddress(o.nc, o.ring, o.rank, prev, deadlineMs);
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
  socket.write(frame(encodeMessage(EdgeHello, { ring: o.ring, from: prev, to: o.rank, transport: "tcp" })));
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

function setupDeadline(ms: number, what: string) {
  let timer: NodeJS.Timeout;
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PeerSetupError(`${what} within ${ms} ms`)), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

export function externalHost(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return "127.0.0.1";
}
