// A ring neighbour that stops (SIGSTOP: its sockets stay open, nothing is ever sent again) fails every wait
// on it within the ring's peer timeout, with an error that names it; a neighbour that is merely late (alive,
// its keepalives flowing) is waited for, however long it takes. Over both transports, with real processes.
import assert from "node:assert/strict";
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { assertAllReduced, rankInput } from "../helpers/ring_harness.js";
import { MEMBER_ENV, type MemberSpec } from "../helpers/ring_member_process.js";
import { connectTransport, PeerTimeoutError, ringAllReduce } from "../../worker/allreduce/mod.js";
import { natsForFile } from "../helpers/nats_for_file.js";

const memberScript = fileURLToPath(new URL("../helpers/ring_member_process.js", import.meta.url));
const PEER_TIMEOUT_MS = 1000;
const nats = natsForFile();

/** Rank 1 of a ring of two in its own process; `reported` settles with its all-reduce results. */
function startPeer(spec: MemberSpec): { child: ChildProcess; reported: Promise<Float32Array[]> } {
  const child = fork(memberScript, [], {
    env: { ...process.env, [MEMBER_ENV]: JSON.stringify(spec) },
    serialization: "advanced",
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const reported = new Promise<Float32Array[]>((resolve, reject) => {
    child.on("message", (m) => resolve(m as Float32Array[]));
    child.on("exit", (code) => reject(new Error(`the peer exited (code ${code}) without reporting`)));
  });
  return { child, reported };
}

function rankZero(ring: string, kind: "tcp" | "nats") {
  return connectTransport({
    nc: nats.nc,
    ring,
    rank: 0,
    size: 2,
    kind,
    listenHost: "127.0.0.1",
    advertiseHost: "127.0.0.1",
    peerTimeoutMs: PEER_TIMEOUT_MS,
    describePeer: (rank) => `worker-${rank}`,
  });
}

for (const kind of ["tcp", "nats"] as const) {
  test(`an all-reduce with a stopped ring peer fails naming it within the peer timeout (${kind})`, async () => {
    const ring = `stopped-${kind}-${process.pid}`;
    // No all-reduce of its own: it joins, reports, then would wait for the parent.
    const peer = startPeer({
      url: nats.server.url,
      ring,
      rank: 1,
      size: 2,
      kind,
      lengths: [],
      seed: 1,
      peerTimeoutMs: PEER_TIMEOUT_MS,
    });
    const transport = await rankZero(ring, kind);
    try {
      await peer.reported;
      peer.child.kill("SIGSTOP");
      const data = rankInput("random", 0, 10_000, 3);
      await assert.rejects(ringAllReduce(transport, data, "s1-b0"), (err: Error) => {
        assert.ok(err instanceof PeerTimeoutError, `${err.name}: ${err.message}`);
        assert.match(err.message, /^ring peer worker-1 did not answer within 1 s$/);
        return true;
      });
      // The ring stays failed: a later call fails at once with the same reason rather than waiting again.
      assert.throws(() => transport.open("s2-b0"), PeerTimeoutError);
    } finally {
      peer.child.kill("SIGKILL");
      await transport.close();
    }
  });

  test(`a live ring peer that starts its all-reduce late is waited for past the peer timeout (${kind})`, async () => {
    const ring = `late-${kind}-${process.pid}`;
    const length = 5003;
    const peer = startPeer({
      url: nats.server.url,
      ring,
      rank: 1,
      size: 2,
      kind,
      lengths: [length],
      seed: 7,
      startDelayMs: 3 * PEER_TIMEOUT_MS,
      peerTimeoutMs: PEER_TIMEOUT_MS,
    });
    const transport = await rankZero(ring, kind);
    try {
      const mine = rankInput("random", 0, length, 7);
      await ringAllReduce(transport, mine, "call-0");
      const [theirs] = await peer.reported;
      assertAllReduced(
        [mine, theirs!],
        [0, 1].map((r) => rankInput("random", r, length, 7)),
        false,
      );
    } finally {
      peer.child.send("close");
      await transport.close();
    }
  });
}
