// Ring all-reduce over both transports with ranks in one process: every length class that can break a
// ring (smaller than the ring, odd, on and next to chunk boundaries), for 2, 3 and 4 ranks.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";
import { ringAllReduce } from "../../worker/allreduce/mod.js";
import { assertAllReduced, rankInput, startRing } from "../helpers/ring_harness.js";

const CHUNK = 16; // small, so short buffers already span many chunks and steps

/** Lengths whose segments (length/n) are smaller than the ring, odd, or k*CHUNK and k*CHUNK +- 1. */
function lengthsFor(n: number): number[] {
  const onBoundary = [1, 3].flatMap((k) => [n * k * CHUNK - 1, n * k * CHUNK, n * k * CHUNK + 1]);
  return [0, 1, n - 1, n, n + 1, 7, 1001, ...onBoundary, 3 * CHUNK * n + 5];
}

let server: NatsServer;
before(async () => {
  server = await startNatsServer();
});
after(async () => {
  await server.stop();
});

for (const kind of ["tcp", "nats"] as const) {
  describe(`ring all-reduce over ${kind}`, () => {
    for (const n of [2, 3, 4]) {
      test(`${n} ranks: sums exactly for every length class, each call tagged`, async () => {
        const ring = await startRing(server.url, kind, n);
        try {
          for (const length of lengthsFor(n)) {
            const inputs = Array.from({ length: n }, (_, r) => rankInput("integers", r, length));
            const results = inputs.map((x) => x.slice());
            await Promise.all(
              ring.transports.map((t, r) => ringAllReduce(t, results[r]!, `len-${length}`, { chunkElements: CHUNK })),
            );
            assertAllReduced(results, inputs, true);
          }
        } finally {
          await ring.close();
        }
      });
    }

    test("random values: within fp32 rounding of the direct sum and bit-identical on every rank", async () => {
      const n = 3;
      const ring = await startRing(server.url, kind, n);
      try {
        for (const length of [1, 997, 100_003]) {
          const inputs = Array.from({ length: n }, (_, r) => rankInput("random", r, length));
          const results = inputs.map((x) => x.slice());
          await Promise.all(
            ring.transports.map((t, r) => ringAllReduce(t, results[r]!, `r${length}`, { chunkElements: 1000 })),
          );
          assertAllReduced(results, inputs, false);
        }
      } finally {
        await ring.close();
      }
    });

    test("ranks passing different lengths: the call fails with RangeError instead of summing garbage", async () => {
      const ring = await startRing(server.url, kind, 2);
      const calls = [new Float32Array(10), new Float32Array(12)].map((data, r) =>
        ringAllReduce(ring.transports[r]!, data, "mismatch", { chunkElements: 4 }).then(
          () => null,
          (err: unknown) => err,
        ),
      );
      const first = await Promise.race(calls);
      assert.ok(first instanceof RangeError, String(first));
      await ring.close(); // the other rank, still waiting, fails when its transport closes
      const outcomes = await Promise.all(calls);
      assert.ok(
        outcomes.every((e) => e instanceof Error),
        String(outcomes),
      );
    });

    test("one rank: the buffer is left as it is", async () => {
      const ring = await startRing(server.url, kind, 1);
      try {
        const data = rankInput("random", 0, 33);
        const copy = data.slice();
        await ringAllReduce(ring.transports[0]!, data, "solo");
        assert.deepEqual(data, copy);
      } finally {
        await ring.close();
      }
    });
  });
}
