// Ring TCP edges authenticate peers with the ring's secret: a stranger that reaches a rank's data-plane
// port (no secret, a wrong MAC, a huge frame, a valid-looking hello for another edge) is refused alone,
// with a reply saying why, and the ring still forms with its real members and sums correctly. A rank
// asks for its neighbour's address sealed with the secret and ignores answers that are not (another
// worker may answer on the ring subjects), refuses a listener that cannot prove the secret, and two
// members with different secrets never form a ring.
import assert from "node:assert/strict";
import { createServer, connect as tcpConnect, type Socket } from "node:net";
import { after, before, test } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { EdgeHello, EdgeHelloReply, decodeMessage, encodeMessage } from "../../proto/mod.js";
import { FrameReader, framePrefix } from "../../worker/allreduce/frames.js";
import { servePeerAddress, lookupPeerAddress } from "../../worker/allreduce/peer_address.js";
import { edgeMac, newHelloNonce, newRingSecret } from "../../worker/allreduce/ring_auth.js";
import { connectTransport, ringAllReduce, type Transport } from "../../worker/allreduce/mod.js";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";
import { assertAllReduced, rankInput } from "../helpers/ring_harness.js";

let server: NatsServer;
const connections: NatsConnection[] = [];
before(async () => {
  server = await startNatsServer();
});
after(async () => {
  await Promise.all(connections.map((nc) => nc.close()));
  await server.stop();
});

async function nats(): Promise<NatsConnection> {
  const nc = await connect({ servers: server.url });
  connections.push(nc);
  return nc;
}

function member(
  nc: NatsConnection,
  ring: string,
  rank: number,
  secret: Uint8Array,
  refused?: string[],
  setupTimeoutMs = 60_000,
) {
  return connectTransport({
    nc,
    ring,
    rank,
    size: 2,
    kind: "tcp",
    listenHost: "127.0.0.1",
    advertiseHost: "127.0.0.1",
    secret,
    setupTimeoutMs,
    onRefused: (why) => refused?.push(why),
  });
}

function frame(body: Uint8Array): Buffer {
  return Buffer.concat([framePrefix(body.length), body]);
}

/** Connects to `port`, sends `bytes`, and resolves with the first frame back (decoded) or null on close. */
function probe(port: number, bytes: Buffer): Promise<{ ok: boolean; error?: string } | null> {
  return new Promise((resolve) => {
    const socket: Socket = tcpConnect(port, "127.0.0.1");
    const reader = new FrameReader((b) => {
      resolve(decodeMessage(EdgeHelloReply, b));
      socket.destroy();
    });
    socket.on("data", (b) => reader.push(b));
    socket.on("error", () => resolve(null));
    socket.on("close", () => resolve(null));
    socket.write(bytes);
  });
}

async function sumOver(transports: Transport[]): Promise<void> {
  const inputs = transports.map((_, r) => rankInput("integers", r, 5000));
  const results = inputs.map((x) => x.slice());
  await Promise.all(transports.map((t, r) => ringAllReduce(t, results[r]!, "auth", { chunkElements: 700 })));
  assertAllReduced(results, inputs, true);
}

test("strangers at a rank's port are refused one by one and the ring still forms and sums", async () => {
  const ring = `auth-${process.pid}-1`;
  const secret = newRingSecret();
  const refused: string[] = [];
  const rank0 = member(await nats(), ring, 0, secret, refused);
  // Ports are reachable by anyone (a scan finds them): the test looks this one up the short way.
  const { port } = await lookupPeerAddress(await nats(), ring, 1, 0, { secret });
  const edge = { ring, from: 0, to: 1, transport: "tcp" as const };

  // A fake peer without the secret: a correct hello for the edge, no MAC.
  const noMac = await probe(port, frame(encodeMessage(EdgeHello, edge)));
  assert.equal(noMac?.ok, false);
  assert.match(noMac!.error!, /does not prove the secret/);
  // A fake peer with a secret of its own.
  const nonce = newHelloNonce();
  const wrong = { ...edge, nonce, mac: edgeMac(newRingSecret(), "hello", edge, nonce) };
  const wrongMac = await probe(port, frame(encodeMessage(EdgeHello, wrong)));
  assert.equal(wrongMac?.ok, false);
  assert.match(wrongMac!.error!, /does not prove the secret/);
  // A frame announcing 200 MB: refused before anything of that size is allocated.
  const huge = Buffer.alloc(4);
  huge.writeUInt32BE(200 * 1024 * 1024);
  const tooBig = await probe(port, huge);
  assert.equal(tooBig?.ok, false);
  assert.match(tooBig!.error!, /exceeds the 4096-byte limit/);
  // Garbage that is no message at all.
  const garbage = await probe(port, frame(Buffer.from("GET / HTTP/1.1\r\n\r\n")));
  assert.equal(garbage?.ok, false);
  assert.equal(refused.length, 4, refused.join("\n"));

  // The real rank 1 still joins: the ring forms and its sum is right.
  const rank1 = member(await nats(), ring, 1, secret);
  const transports = await Promise.all([rank0, rank1]);
  try {
    await sumOver(transports);
  } finally {
    await Promise.all(transports.map((t) => t.close()));
  }
});

test("a forged address answer is ignored: the asker waits for the real member's and the ring forms", async () => {
  const ring = `auth-${process.pid}-4`;
  const secret = newRingSecret();
  // A listener that would accept anyone, and two forgers pointing rank 1 at it: one answering in the clear
  // (another worker's NATS user may subscribe to ring subjects and answer), one sealing with a secret of its own.
  let strangers = 0;
  const listener = createServer((socket) => {
    strangers++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const forged = { host: "127.0.0.1", port: (listener.address() as { port: number }).port };
  const forgers = [
    servePeerAddress(await nats(), ring, 0, forged),
    servePeerAddress(await nats(), ring, 0, forged, { secret: newRingSecret() }),
  ];
  const refused: string[] = [];
  try {
    const rank1 = member(await nats(), ring, 1, secret, refused);
    // Rank 1 asks while only the forgers answer; the real rank 0 comes a little later.
    const deadline = Date.now() + 10_000;
    while (refused.filter((why) => /ignored an answer/.test(why)).length < 2) {
      assert.ok(Date.now() < deadline, `no forged answer was seen: ${refused.join("; ")}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const rank0 = member(await nats(), ring, 0, secret);
    const transports = await Promise.all([rank0, rank1]);
    try {
      await sumOver(transports);
    } finally {
      await Promise.all(transports.map((t) => t.close()));
    }
    assert.equal(strangers, 0, "a rank connected to the forged address");
    assert.ok(
      refused.every((why) => /does not prove the secret/.test(why)),
      refused.join("\n"),
    );
  } finally {
    for (const sub of forgers) sub.unsubscribe();
    listener.close();
  }
});

test("an address request without the ring's secret gets no answer", async () => {
  const ring = `auth-${process.pid}-5`;
  const secret = newRingSecret();
  const refused: string[] = [];
  const sub = servePeerAddress(
    await nats(),
    ring,
    0,
    { host: "127.0.0.1", port: 1 },
    { secret, onRefused: (why) => refused.push(why) },
  );
  try {
    await assert.rejects(lookupPeerAddress(await nats(), ring, 1, 0, { deadlineMs: 700 }), /no reply on/);
    await assert.rejects(
      lookupPeerAddress(await nats(), ring, 1, 0, { deadlineMs: 700, secret: newRingSecret() }),
      /no reply on/,
    );
    assert.ok(refused.length >= 2, refused.join("\n"));
    // the control: the holder of the secret gets the address
    assert.equal((await lookupPeerAddress(await nats(), ring, 1, 0, { secret })).port, 1);
  } finally {
    sub.unsubscribe();
  }
});

test("a rank refuses a listener at its neighbour's address that cannot prove the ring's secret", async () => {
  const ring = `auth-${process.pid}-2`;
  const secret = newRingSecret();
  // What answers at the address (say a process that took the port of a rank that died) accepts with ok but
  // no proof; the address itself comes sealed, as the real rank sent it.
  const listener = createServer((socket) => {
    socket.once("data", () => socket.write(frame(encodeMessage(EdgeHelloReply, { ok: true }))));
  });
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const port = (listener.address() as { port: number }).port;
  const sub = servePeerAddress(await nats(), ring, 0, { host: "127.0.0.1", port }, { secret });
  try {
    await assert.rejects(member(await nats(), ring, 1, secret), /does not prove the secret of ring/);
  } finally {
    sub.unsubscribe();
    listener.close();
  }
});

test("two members holding different secrets never form a ring", async () => {
  const ring = `auth-${process.pid}-3`;
  const refused: string[] = [];
  const setups = [
    member(await nats(), ring, 0, newRingSecret(), refused, 5_000),
    member(await nats(), ring, 1, newRingSecret(), refused, 5_000),
  ];
  const outcomes = await Promise.allSettled(setups);
  for (const o of outcomes) {
    if (o.status === "fulfilled") await o.value.close();
    assert.equal(o.status, "rejected", "a member formed a ring with a peer of another secret");
  }
  assert.ok(
    refused.some((why) => /does not prove the secret/.test(why)),
    refused.join("\n"),
  );
});
