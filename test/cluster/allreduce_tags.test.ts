// Tags keep all-reduce calls apart: consecutive calls, concurrent calls started in different orders on
// different ranks (as overlapping gradient buckets will be), and a tag reused while still open.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";
import { TagInUseError, allReduceTag, ringAllReduce } from "../../worker/allreduce/mod.js";
import { assertAllReduced, rankInput, startRing } from "../helpers/ring_harness.js";

let server: NatsServer;
before(async () => {
  server = await startNatsServer();
});
after(async () => {
  await server.stop();
});

for (const kind of ["tcp", "nats"] as const) {
  describe(`tagged all-reduce over ${kind}`, () => {
    test("back-to-back calls on one transport each get their own sum", async () => {
      const n = 3;
      const ring = await startRing(server.url, kind, n);
      try {
        for (let step = 0; step < 3; step++) {
          for (let bucket = 0; bucket < 4; bucket++) {
            const length = 50 + 31 * bucket;
            const inputs = Array.from({ length: n }, (_, r) => rankInput("integers", r, length, 100 * step + bucket));
            const results = inputs.map((x) => x.slice());
            await Promise.all(
              ring.transports.map((t, r) =>
                ringAllReduce(t, results[r]!, allReduceTag(step, bucket), { chunkElements: 8 }),
              ),
            );
            assertAllReduced(results, inputs, true);
          }
        }
      } finally {
        await ring.close();
      }
    });

    test("concurrent calls started in opposite orders on different ranks never mix chunks", async () => {
      const n = 4;
      const buckets = 5;
      const ring = await startRing(server.url, kind, n, 2); // a small window: later buckets wait on credit
      try {
        const inputs = Array.from({ length: buckets }, (_, b) =>
          Array.from({ length: n }, (_, r) => rankInput("integers", r, 200 + b, b)),
        );
        const results = inputs.map((perRank) => perRank.map((x) => x.slice()));
        await Promise.all(
          ring.transports.flatMap((t, r) => {
            // Even ranks start bucket 0 first, odd ranks the last bucket first.
            const order = Array.from({ length: buckets }, (_, i) => (r % 2 === 0 ? i : buckets - 1 - i));
            return order.map((b) => ringAllReduce(t, results[b]![r]!, allReduceTag(7, b), { chunkElements: 8 }));
          }),
        );
        for (let b = 0; b < buckets; b++) assertAllReduced(results[b]!, inputs[b]!, true);
      } finally {
        await ring.close();
      }
    });

    test("opening a tag that is still in use is refused", async () => {
      const ring = await startRing(server.url, kind, 2);
      try {
        const [t0, t1] = ring.transports;
        const a = [new Float32Array([1, 2, 3]), new Float32Array([4, 5, 6])];
        const first = ringAllReduce(t0!, a[0]!, "same");
        await assert.rejects(ringAllReduce(t0!, new Float32Array(3), "same"), TagInUseError);
        await Promise.all([first, ringAllReduce(t1!, a[1]!, "same")]);
        assert.deepEqual(Array.from(a[0]!), [5, 7, 9]);
        assert.deepEqual(Array.from(a[1]!), [5, 7, 9]);
      } finally {
        await ring.close();
      }
    });
  });
}
