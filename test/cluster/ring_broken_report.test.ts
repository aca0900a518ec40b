// A ring whose neighbour goes away between all-reduces tells its owner at once (the worker reports it to the
// coordinator, which need not wait for a command to the dead neighbour to time out); closing the ring
// oneself is no breakage and is not reported.
import assert from "node:assert/strict";
import { test } from "node:test";
import { connectTransport, type Transport } from "../../worker/allreduce/mod.js";
import { natsForFile } from "../helpers/nats_for_file.js";

const nats = natsForFile();

function ringOfTwo(ring: string): Promise<Transport[]> {
  return Promise.all(
    [0, 1].map((rank) =>
      connectTransport({
        nc: nats.nc,
        ring,
        rank,
        size: 2,
        kind: "tcp",
        listenHost: "127.0.0.1",
        advertiseHost: "127.0.0.1",
        peerTimeoutMs: 30_000,
      }),
    ),
  );
}

test("a neighbour's link closing with no all-reduce running is reported once; one's own close is not", async () => {
  const [a, b] = await ringOfTwo(`broken-${process.pid}`);
  const reportsA: Error[] = [];
  const reportsB: Error[] = [];
  a!.onBroken?.((err) => reportsA.push(err));
  b!.onBroken?.((err) => reportsB.push(err));
  await b!.close();
  const until = Date.now() + 5000;
  while (reportsA.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  await a!.close();
  assert.equal(reportsA.length, 1, "rank 0 reports its ring broke once");
  assert.match(reportsA[0]!.message, /lost its connection/);
  assert.deepEqual(reportsB, [], "the rank that closed its own ring reports nothing");
});
