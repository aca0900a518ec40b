// Another worker on the ring subjects: every worker's NATS user may use ringtune.ring.>, so with the NATS
// transport a worker outside a ring can read that ring's traffic and publish into it. With the ring's
// secret, what it reads is sealed (no gradient value appears in any message) and what it publishes is
// dropped (a forged chunk does not enter the sum). A plain nats-server models that worker's rights.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { randomBytes } from "node:crypto";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { encodeChunk, subjects } from "../../proto/mod.js";
import { allReduceTag, connectTransport, ringAllReduce } from "../../worker/allreduce/mod.js";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";

const LENGTH = 1000;
let server: NatsServer;
const conns: NatsConnection[] = [];
before(async () => {
  server = await startNatsServer();
});
after(async () => {
  await Promise.all(conns.map((c) => c.close()));
  await server.stop();
});

async function natsConnection(): Promise<NatsConnection> {
  const nc = await connect({ servers: server.url });
  conns.push(nc);
  return nc;
}

/** Whether `haystack` holds four consecutive float32s equal to `value`. */
function holdsFloats(haystack: Uint8Array, value: number): boolean {
  const needle = Buffer.from(new Float32Array([value, value, value, value]).buffer);
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.length).includes(needle);
}

test("NATS ring with a secret: an eavesdropper reads no gradient and a forged chunk is dropped", async () => {
  const ring = "hostile-nats-ring";
  const secret = new Uint8Array(randomBytes(32));
  const refused: string[] = [];
  const [nc0, nc1, spy] = await Promise.all([natsConnection(), natsConnection(), natsConnection()]);
  const seen: Uint8Array[] = [];
  spy.subscribe("ringtune.ring.>", {
    callback: (_err, msg) => {
      seen.push(new Uint8Array(msg.data));
    },
  });
  await spy.flush();

  const member = (nc: NatsConnection, rank: number) =>
    connectTransport({ nc, ring, rank, size: 2, kind: "nats", secret, onRefused: (why) => refused.push(why) });
  const [t0, t1] = await Promise.all([member(nc0, 0), member(nc1, 1)]);
  try {
    // Before rank 0 sends anything, the attacker puts its own first chunk of the step on edge 0->1.
    const tag = allReduceTag(0, 0);
    spy.publish(subjects.edgeChunks(ring, 0, 1), encodeChunk(tag, 0, new Float32Array(LENGTH / 2).fill(1e6)));
    await spy.flush();
    await nc1.flush();

    const a = new Float32Array(LENGTH).fill(1234.5);
    const b = new Float32Array(LENGTH).fill(4321.25);
    await Promise.all([ringAllReduce(t0, a, tag), ringAllReduce(t1, b, tag)]);
    const sum = 1234.5 + 4321.25;
    assert.ok(
      a.every((x) => x === sum) && b.every((x) => x === sum),
      `sums: ${a[0]}, ${a[LENGTH - 1]}, ${b[0]}, ${b[LENGTH - 1]}`,
    );
    assert.ok(
      refused.some((why) => why.includes(subjects.edgeChunks(ring, 0, 1))),
      `refusals: ${refused.join("; ")}`,
    );

    await spy.flush();
    assert.ok(seen.length > 2, `the eavesdropper saw ${seen.length} messages`);
    for (const value of [1234.5, 4321.25, sum]) {
      assert.ok(!seen.some((m) => holdsFloats(m, value)), `a ring message carries ${value} in the clear`);
    }
  } finally {
    await Promise.all([t0.close(), t1.close()]);
  }
});
