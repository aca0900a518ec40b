// Ranks in separate processes, as in a real cluster: each rebuilds its input from a seed, and the parent
// checks every rank's result against the direct sum.
import assert from "node:assert/strict";
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";
import { assertAllReduced, rankInput } from "./ring_harness.js";
import { MEMBER_ENV, type MemberSpec } from "./ring_member_process.js";

const memberScript = fileURLToPath(new URL("./ring_member_process.js", import.meta.url));
let server: NatsServer;
before(async () => {
  server = await startNatsServer();
});
after(async () => {
  await server.stop();
});

function runMember(spec: MemberSpec): Promise<Float32Array[]> {
  return new Promise((resolve, reject) => {
    const child = fork(memberScript, [], {
      env: { ...process.env, [MEMBER_ENV]: JSON.stringify(spec) },
      serialization: "advanced", // typed arrays cross IPC as themselves
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    let result: Float32Array[] | undefined;
    child.on("message", (m) => (result = m as Float32Array[]));
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 && result ? resolve(result) : reject(new Error(`rank ${spec.rank} exited with code ${code}`)),
    );
  });
}

for (const kind of ["tcp", "nats"] as const) {
  test(`3 ranks in separate processes all-reduce over ${kind}`, async () => {
    const size = 3;
    const lengths = [2, 1001, 300_007]; // smaller than the ring, odd, several default chunks per segment
    const ring = `proc-${kind}-${process.pid}`;
    const results = await Promise.all(
      Array.from({ length: size }, (_, rank) => runMember({ url: server.url, ring, rank, size, kind, lengths, seed: 5 })),
    );
    for (const [i, length] of lengths.entries()) {
      const inputs = Array.from({ length: size }, (_, r) => rankInput("random", r, length, 5 + i));
      assertAllReduced(results.map((perRank) => perRank[i]!), inputs, false);
    }
    assert.equal(results.length, size);
  });
}
