// The NCCL data plane through the project's stand-in libnccl.so.2: the loader finds the library named by
// RINGTUNE_NCCL_LIB (and says why when none opens), ranks bootstrap from one unique id, the collectives give
// the sums a ring gives, shard the way the TCP ring shards for ZeRO-1, and a peer that never joins, goes
// silent or dies fails the wait instead of hanging it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadAddon, type NcclComm } from "../../native/js/addon.js";
import { ownedSpan } from "../../worker/allreduce/ring_allreduce.js";
import { ncclRankOf } from "../../worker/allreduce/nccl_plane.js";
import { NCCL_STANDIN, ncclStandinMissing } from "../helpers/nccl_standin.js";

// Read once, at the library's first use in this process: set before anything asks for NCCL.
process.env.RINGTUNE_NCCL_LIB = NCCL_STANDIN;
const addon = loadAddon();
const skip = ncclStandinMissing(addon.cudaEmu);
const TIMEOUT_MS = 20_000;

/** Ring ranks 0..size-1 joined to one communicator, numbered as the worker numbers them (ncclRankOf). */
async function ring(size: number): Promise<NcclComm[]> {
  const id = addon.ncclUniqueId!();
  return Promise.all(
    Array.from({ length: size }, (_, r) => addon.ncclConnect!(id, ncclRankOf(r, size), size, TIMEOUT_MS)),
  );
}

function randomData(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 30 - 1;
  });
}

test("the loader opens RINGTUNE_NCCL_LIB; without a library it gives the reason, not a crash", { skip }, () => {
  const probe = addon.ncclProbe!();
  assert.equal(probe.available, true, probe.reason);
  assert.equal(probe.path, NCCL_STANDIN);
  assert.ok(probe.version! >= 21400, `version ${probe.version}`);

  // A fresh process (the library is opened once per process) pointed at nothing.
  const script = `import("${new URL("../../native/js/addon.js", import.meta.url).href}")
    .then((m) => console.log(JSON.stringify(m.loadAddon().ncclProbe())))`;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, RINGTUNE_NCCL_LIB: "/nonexistent/libnccl.so.2" },
  });
  const missing = JSON.parse(out.toString()) as { available: boolean; reason: string };
  assert.equal(missing.available, false);
  assert.match(missing.reason, /libnccl\.so\.2 not found at RINGTUNE_NCCL_LIB \(\/nonexistent\/libnccl\.so\.2:/);

  // Without RINGTUNE_NCCL_LIB: the pip wheel's layout in the active virtual environment.
  const venv = mkdtempSync(path.join(tmpdir(), "ringtune-venv-"));
  const wheelLib = path.join(venv, "lib/python3.12/site-packages/nvidia/nccl/lib");
  mkdirSync(wheelLib, { recursive: true });
  copyFileSync(NCCL_STANDIN, path.join(wheelLib, "libnccl.so.2"));
  const env: NodeJS.ProcessEnv = { ...process.env, VIRTUAL_ENV: venv };
  delete env.RINGTUNE_NCCL_LIB;
  const found = JSON.parse(
    execFileSync(process.execPath, ["--input-type=module", "-e", script], { env }).toString(),
  ) as { available: boolean; path: string };
  assert.deepEqual(found, { ...found, available: true, path: path.join(wheelLib, "libnccl.so.2") });
  rmSync(venv, { recursive: true, force: true });
});

test("two ranks bootstrap from one id and all-reduce to the same bits: the fp32 sum of both", { skip }, async () => {
  const comms = await ring(2);
  try {
    const n = 100_003; // not a multiple of the ring size: unequal segments
    const inputs = [randomData(n, 1), randomData(n, 2)];
    const bufs = inputs.map((a) => a.slice());
    await Promise.all(comms.map((c, r) => c.collective(bufs[r]!, "all-reduce", TIMEOUT_MS)));
    for (let i = 0; i < n; i++) assert.equal(bufs[0]![i], Math.fround(inputs[0]![i]! + inputs[1]![i]!), `element ${i}`);
    assert.deepEqual(bufs[1], bufs[0]);
  } finally {
    for (const c of comms) c.abort();
  }
});

test(
  "ZeRO-1 on NCCL: the reduce-scatter leaves each rank its TCP-ring shard summed, the all-gather spreads them",
  { skip },
  async () => {
    const comms = await ring(3);
    try {
      // Divisible lengths go through ncclReduceScatter/ncclAllGather, others through grouped reduces/broadcasts.
      for (const n of [999, 1000, 7, 2]) {
        const inputs = [0, 1, 2].map((r) => randomData(n, 10 * n + r));
        const bufs = inputs.map((a) => a.slice());
        await Promise.all(comms.map((c, r) => c.collective(bufs[r]!, "reduce-scatter", TIMEOUT_MS)));
        for (let r = 0; r < 3; r++) {
          const { start, end } = ownedSpan(n, r, 3);
          for (let i = start; i < end; i++) {
            // the ring's order of summation varies with the segment: compare with the sum in double, to fp32
            const sum = inputs[0]![i]! + inputs[1]![i]! + inputs[2]![i]!;
            assert.ok(Math.abs(bufs[r]![i]! - sum) <= 1e-6 * (1 + Math.abs(sum)), `n ${n} rank ${r} element ${i}`);
          }
        }
        // Each rank knows only its own shard (the rest zeroed here); the all-gather gives everyone all of them.
        const shards = [0, 1, 2].map((r) => {
          const { start, end } = ownedSpan(n, r, 3);
          const b = new Float32Array(n);
          b.set(bufs[r]!.subarray(start, end), start);
          return b;
        });
        await Promise.all(comms.map((c, r) => c.collective(shards[r]!, "all-gather", TIMEOUT_MS)));
        const whole = new Float32Array(n);
        for (let r = 0; r < 3; r++) {
          const { start, end } = ownedSpan(n, r, 3);
          whole.set(bufs[r]!.subarray(start, end), start);
        }
        for (let r = 0; r < 3; r++) assert.deepEqual(shards[r], whole, `n ${n}: rank ${r} after the all-gather`);
      }
    } finally {
      for (const c of comms) c.abort();
    }
  },
);

test("a rank that never joins: the others' communicator fails after the ring timeout", { skip }, async () => {
  const id = addon.ncclUniqueId!();
  const began = Date.now();
  await assert.rejects(addon.ncclConnect!(id, 0, 2, 1500), /other ranks did not all join within 1500 ms/);
  const waited = Date.now() - began;
  assert.ok(waited >= 1400 && waited < 10_000, `waited ${waited} ms`);
});

test("a silent peer: abort ends the collective blocked on it at once", { skip }, async () => {
  const comms = await ring(2);
  const blocked = comms[0]!.collective(randomData(1000, 3), "all-reduce", 60_000);
  await new Promise((r) => setTimeout(r, 300)); // rank 1 issues nothing: silent
  const began = Date.now();
  comms[0]!.abort();
  await assert.rejects(blocked, /aborted/);
  assert.ok(Date.now() - began < 5000);
  assert.equal(comms[0]!.aborted, true);
  await assert.rejects(comms[0]!.collective(new Float32Array(4), "all-reduce", 1000), /aborted/);
  comms[1]!.abort();
});

test("a peer that dies mid-collective: the survivor's collective fails naming the lost rank", { skip }, async () => {
  const comms = await ring(2);
  const survivor = comms[0]!.collective(randomData(1000, 4), "all-reduce", 60_000);
  await new Promise((r) => setTimeout(r, 300));
  comms[1]!.abort(); // its sockets close, as a killed process's do
  await assert.rejects(
    survivor,
    /ncclAllReduce: remote process exited or there was a network error.*closed its connection/,
  );
  comms[0]!.abort();
});
