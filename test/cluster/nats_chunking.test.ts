// The NATS transport cuts chunks to fit the server's max_payload, whatever chunk size is asked for.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";
import { ringAllReduce } from "../../worker/allreduce/mod.js";
import { assertAllReduced, rankInput, startRing } from "../helpers/ring_harness.js";

const MAX_PAYLOAD = 16 * 1024;
let server: NatsServer;
before(async () => {
  server = await startNatsServer({ maxPayload: MAX_PAYLOAD });
});
after(async () => {
  await server.stop();
});

test("chunks stay under a small max_payload and the sum is still exact", async () => {
  const n = 3;
  const ring = await startRing(server.url, "nats", n);
  try {
    const max = ring.transports[0]!.maxChunkElements;
    assert.ok(max * 4 < MAX_PAYLOAD && max > 0, `max chunk of ${max} floats must fit ${MAX_PAYLOAD} bytes`);
    const length = 3 * max * n + 5; // several full-size chunks per segment and a ragged tail
    const inputs = Array.from({ length: n }, (_, r) => rankInput("integers", r, length));
    const results = inputs.map((x) => x.slice());
    // Ask for far more than fits: the all-reduce must cap it, or the server would refuse the publish.
    await Promise.all(ring.transports.map((t, r) => ringAllReduce(t, results[r]!, "big", { chunkElements: 1 << 20 })));
    assertAllReduced(results, inputs, true);
  } finally {
    await ring.close();
  }
});
