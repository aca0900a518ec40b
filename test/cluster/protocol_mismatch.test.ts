// A ring neighbour of another protocol version is refused when the edge is set up, on both transports,
// with ProtocolVersionError rather than garbage sums later.
import assert from "node:assert/strict";
import { connect as tcpConnect } from "node:net";
import { after, before, test } from "node:test";
import { decode, encode } from "@msgpack/msgpack";
import { connect } from "@nats-io/transport-node";
import { PROTOCOL_VERSION, ProtocolVersionError, subjects } from "../../proto/mod.js";
import { framePrefix } from "../../worker/allreduce/frames.js";
import { lookupPeerAddress } from "../../worker/allreduce/peer_address.js";
import { connectTransport } from "../../worker/allreduce/mod.js";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";

const OTHER_VERSION = PROTOCOL_VERSION + 1;
let server: NatsServer;
before(async () => {
  server = await startNatsServer();
});
after(async () => {
  await server.stop();
});

test("TCP: a hello from a peer of another protocol version fails the setup with ProtocolVersionError", async () => {
  const ring = "mismatch-tcp";
  const nc = await connect({ servers: server.url });
  const impostor = await connect({ servers: server.url });
  try {
    const setup = connectTransport({
      nc,
      ring,
      rank: 0,
      size: 2,
      kind: "tcp",
      listenHost: "127.0.0.1",
      advertiseHost: "127.0.0.1",
    });
    // Rank 1, speaking another version, finds rank 0 the usual way and says hello for the edge 0->1.
    const addr = await lookupPeerAddress(impostor, ring, 1, 0);
    const socket = tcpConnect(addr.port, addr.host);
    const hello = encode({ v: OTHER_VERSION, ring, from: 0, to: 1, transport: "tcp" });
    socket.write(Buffer.concat([framePrefix(hello.length), hello]));
    await assert.rejects(setup, (err: unknown) => {
      assert.ok(err instanceof ProtocolVersionError, String(err));
      assert.equal(err.actual, OTHER_VERSION);
      return true;
    });
    socket.destroy();
  } finally {
    await Promise.all([nc.close(), impostor.close()]);
  }
});

test("NATS: a hello from a peer of another protocol version fails the setup and is answered with a refusal", async () => {
  const ring = "mismatch-nats";
  const nc = await connect({ servers: server.url });
  const impostor = await connect({ servers: server.url });
  try {
    const setup = connectTransport({ nc, ring, rank: 0, size: 2, kind: "nats" });
    const setupOutcome = setup.then(
      () => null,
      (err: unknown) => err,
    );
    const hello = encode({ v: OTHER_VERSION, ring, from: 1, to: 0, transport: "nats" });
    // Rank 0 may not be subscribed yet: ask until it answers.
    let reply: { ok: boolean; error?: string } | undefined;
    while (!reply) {
      try {
        const m = await impostor.request(subjects.edgeHello(ring, 1, 0), hello, { timeout: 5_000 });
        reply = decode(m.data) as { ok: boolean; error?: string };
      } catch {
        await new Promise((r) => setImmediate(r));
      }
    }
    assert.equal(reply.ok, false);
    assert.match(reply.error ?? "", /protocol version mismatch/);
    const err = await setupOutcome;
    assert.ok(err instanceof ProtocolVersionError, String(err));
  } finally {
    await Promise.all([nc.close(), impostor.close()]);
  }
});
