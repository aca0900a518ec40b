// The all-reduce's two halves on their own, as ZeRO-1 uses them: a reduce-scatter leaves each rank the
// exact sum of the segment it owns (and only that one is final), an all-gather copies every rank's owned
// segment to every rank bit for bit, and the global gradient norm formed from per-rank sums is the same
// double on every rank.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";
import { ownedSpan, ringAllGather, ringReduceScatter } from "../../worker/allreduce/mod.js";
import { globalGradNorm, zeroShardRanges } from "../../worker/zero_shard.js";
import { rankInput, startRing } from "../helpers/ring_harness.js";

const CHUNK = 16;

let server: NatsServer;
before(async () => {
  server = await startNatsServer();
});
after(async () => {
  await server.stop();
});

for (const n of [2, 3]) {
  test(`${n} ranks: reduce-scatter sums each owned segment exactly; all-gather then completes every rank`, async () => {
    const ring = await startRing(server.url, "tcp", n);
    try {
      for (const length of [1, n, 7, 1001, n * CHUNK * 3 + 5]) {
        const inputs = Array.from({ length: n }, (_, r) => rankInput("integers", r, length));
        const data = inputs.map((x) => x.slice());
        await Promise.all(
          ring.transports.map((t, r) => ringReduceScatter(t, data[r]!, `rs-${length}`, { chunkElements: CHUNK })),
        );
        const sum = (i: number) => inputs.reduce((s, x) => s + x[i]!, 0);
        const owned = Array.from({ length: n }, (_, r) => ownedSpan(length, r, n));
        // The owned segments tile the buffer: each element is some rank's to sum.
        assert.equal(
          owned.reduce((s, o) => s + (o.end - o.start), 0),
          length,
        );
        for (let r = 0; r < n; r++)
          for (let i = owned[r]!.start; i < owned[r]!.end; i++)
            assert.equal(data[r]![i], sum(i), `rank ${r}, element ${i} of its owned segment`);
        await Promise.all(
          ring.transports.map((t, r) => ringAllGather(t, data[r]!, `ag-${length}`, { chunkElements: CHUNK })),
        );
        for (let r = 0; r < n; r++)
          for (let i = 0; i < length; i++) assert.equal(data[r]![i], sum(i), `rank ${r}, element ${i} after gather`);
      }
    } finally {
      await ring.close();
    }
  });
}

test("the global gradient norm is the same double on every rank, from each rank's sum of squares", async () => {
  const n = 3;
  const ring = await startRing(server.url, "tcp", n);
  try {
    // values whose float32 images would differ: the norm must travel at full precision
    const own = [1 / 3, Math.PI * 1e-7, 12345.678901234];
    const norms = await Promise.all(ring.transports.map((t, r) => globalGradNorm(t, own[r]!, "norm")));
    const want = Math.sqrt(own[0]! + own[1]! + own[2]!);
    for (const norm of norms) assert.equal(norm, norms[0], "bit-identical on every rank");
    // float32 transport of the sums would be off by about 1e-8 relative; doubles by an ulp of the addition order
    assert.ok(Math.abs(norms[0]! - want) <= 1e-15 * want, `${norms[0]} vs ${want}`);
  } finally {
    await ring.close();
  }
});

test("a ZeRO-1 shard takes the owned piece of every bucket, and the shards tile the buckets", () => {
  const buckets: [number, number][] = [
    [100, 10],
    [40, 60],
    [0, 40],
    [110, 2],
  ];
  for (const n of [2, 3]) {
    const covered = new Uint8Array(112);
    for (let r = 0; r < n; r++)
      for (const [o, size] of zeroShardRanges(buckets, r, n)) for (let i = o; i < o + size; i++) covered[i]!++;
    assert.ok(
      covered.every((c) => c === 1),
      `${n} ranks: every element in exactly one shard`,
    );
  }
  assert.deepEqual(zeroShardRanges([[40, 60]], 0, 3), [[60, 20]], "rank 0 owns segment 1 of each bucket");
});
