// A ring member in its own process, for the multi-process test: reads its part from the environment,
// all-reduces its deterministic input, and sends the result to the parent over IPC.
import { connect } from "@nats-io/transport-node";
import type { TransportKind } from "../../proto/mod.js";
import { connectTransport, ringAllReduce } from "../../worker/allreduce/mod.js";
import { rankInput } from "./ring_harness.js";

export interface MemberSpec {
  url: string;
  ring: string;
  rank: number;
  size: number;
  kind: TransportKind;
  lengths: number[];
  seed: number;
  /** wait this long after joining before the first all-reduce (a slow but live peer) */
  startDelayMs?: number;
  /** the ring's peer timeout (every rank of a ring uses the job's) */
  peerTimeoutMs?: number;
}

export const MEMBER_ENV = "RINGTUNE_TEST_RING_MEMBER";

async function main(spec: MemberSpec): Promise<void> {
  const nc = await connect({ servers: spec.url });
  const transport = await connectTransport({
    nc,
    ring: spec.ring,
    rank: spec.rank,
    size: spec.size,
    kind: spec.kind,
    listenHost: "127.0.0.1",
    advertiseHost: "127.0.0.1",
    peerTimeoutMs: spec.peerTimeoutMs,
  });
  const results: Float32Array[] = [];
  if (spec.startDelayMs) await new Promise((r) => setTimeout(r, spec.startDelayMs));
  for (const [i, length] of spec.lengths.entries()) {
    const data = rankInput("random", spec.rank, length, spec.seed + i);
    await ringAllReduce(transport, data, `call-${i}`);
    results.push(data);
  }
  await new Promise<void>((resolve, reject) =>
    process.send!(results, (err: Error | null) => (err ? reject(err) : resolve())),
  );
  // Close only when the parent says every rank is done (see allreduce_processes.test.ts).
  await new Promise<void>((resolve) => process.once("message", () => resolve()));
  await transport.close();
  await nc.close();
}

// Only when started by the test with a spec (a test runner may load this file on its own).
const raw = process.env[MEMBER_ENV];
if (raw && process.send) {
  main(JSON.parse(raw) as MemberSpec).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
