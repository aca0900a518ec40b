// Ranks in separate processes, as in a real cluster: each rebuilds its input from a seed, and the parent
// checks every rank's result against the direct sum.
import assert from "node:assert/strict";
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";
import { assertAllReduced, rankInput } from "../helpers/ring_harness.js";
import { MEMBER_ENV, type MemberSpec } from "../helpers/ring_member_process.js";

const memberScript = fileURLToPath(new URL("../helpers/ring_member_process.js", import.meta.url));
let server: NatsServer;
before(async () => {
  server = await startNatsServer();
});
after(async () => {
  await server.stop();
});

/**
 * Starts one rank; `results` settles when it reports, `exited` when it has exited. A rank closes its
 * transport only when told (`close()`), after every rank reported, as workers close theirs only when the
 * coordinator releases the job: a rank that closed early would cut a neighbour's last exchange.
 */
function runMember(spec: MemberSpec): { results: Promise<Float32Array[]>; close(): void; exited: Promise<void> } {
  const child = fork(memberScript, [], {
    env: { ...process.env, [MEMBER_ENV]: JSON.stringify(spec) },
    serialization: "advanced", // typed arrays cross IPC as themselves
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = new Promise<void>((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`rank ${spec.rank} exited with code ${code}`)),
    );
  });
  const results = new Promise<Float32Array[]>((resolve, reject) => {
    child.on("message", (m) => resolve(m as Float32Array[]));
    exited.then(() => reject(new Error(`rank ${spec.rank} exited without reporting`)), reject);
  });
  return { results, exited, close: () => child.send("close") };
}

for (const kind of ["tcp", "nats"] as const) {
  test(`3 ranks in separate processes all-reduce over ${kind}`, async () => {
    const size = 3;
    const lengths = [2, 1001, 300_007]; // smaller than the ring, odd, several default chunks per segment
    const ring = `proc-${kind}-${process.pid}`;
    const members = Array.from({ length: size }, (_, rank) =>
      runMember({ url: server.url, ring, rank, size, kind, lengths, seed: 5 }),
    );
    const results = await Promise.all(members.map((m) => m.results));
    for (const m of members) m.close();
    await Promise.all(members.map((m) => m.exited));
    for (const [i, length] of lengths.entries()) {
      const inputs = Array.from({ length: size }, (_, r) => rankInput("random", r, length, 5 + i));
      assertAllReduced(
        results.map((perRank) => perRank[i]!),
        inputs,
        false,
      );
    }
    assert.equal(results.length, size);
  });
}
