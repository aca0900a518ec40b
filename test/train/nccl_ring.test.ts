// A ring of two `--device cuda-emu` worker processes on the NCCL data plane (the project's stand-in
// libnccl.so.2 named by RINGTUNE_NCCL_LIB): rank 0 makes the unique id, the coordinator hands it out sealed
// with the ring's assignments, each gradient bucket is all-reduced on the device as the backward finishes it,
// and the losses are those of the same ring on host staging over TCP; under ZeRO-1 the buckets are
// reduce-scattered and the updated weights all-gathered on the device, to the same losses. Under sequence
// parallelism the group's first rank also makes the group's id and the attention blocks move by NCCL send/recv,
// to the losses of the same group over its TCP link; a worker killed mid-job there re-forms the ring from the
// last checkpoint, on NCCL again (ring and group), to those losses.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { TestCluster, trainingFixture } from "../helpers/cluster.js";
import { assertResumedAtCheckpoint, assertSameLosses, lossesByStep } from "../helpers/losses.js";
import { killAllWorkerProcesses, WorkerProcess } from "../helpers/worker_process.js";
import { loadAddon } from "../../native/js/addon.js";
import { ONE_HEAD_BYTE_LLAMA } from "../helpers/tiny_model.js";
import { NCCL_STANDIN, ncclStandinMissing } from "../helpers/nccl_standin.js";

after(killAllWorkerProcesses);

const EMU = ["--device", "cuda-emu"];
const WITH_NCCL = { RINGTUNE_NCCL_LIB: NCCL_STANDIN };
const WITHOUT_NCCL = { RINGTUNE_NCCL_LIB: "/nonexistent/libnccl.so.2" };
const timing = { heartbeatMs: 250, lostAfterMs: 5000 };
const skip = ncclStandinMissing(loadAddon().cudaEmu);
/** The emulator is slow, and slower on a loaded machine: a job's wait is generous. */
const JOB_WAIT_MS = 400_000;

async function runToEnd(cluster: TestCluster, spec: Record<string, unknown>, dir: string) {
  const reply = await cluster.submit(spec, dir);
  assert.ok(reply.ok, reply.error);
  const rec = await cluster.finished(reply.id!, JOB_WAIT_MS);
  assert.equal(rec.status, "completed", rec.message);
  return rec;
}

test(
  "two cuda-emu workers train on NCCL to the TCP ring's losses; a worker killed mid-step re-forms the ring on NCCL",
  { timeout: 1_500_000, skip },
  async (t) => {
    const { dir, baseSpec } = trainingFixture();
    writeFileSync(path.join(dir, "model.json"), JSON.stringify(ONE_HEAD_BYTE_LLAMA));
    // fp32: the two data planes' losses are compared to fp32 rounding.
    const spec = { ...baseSpec, workers: 2, max_steps: 4, save_every: 2, checksum_every: 4, precision: "fp32" };
    // Both workers hold halves of every row. The emulator's ring attention is slow: two rows a step.
    const spSpec = { ...spec, sequence_parallel: 2, global_batch_rows: 2, micro_batch_rows: 2 };

    // The reference: the same ring on host staging over TCP (these workers find no NCCL).
    const tcp = await TestCluster.start(0, { timing });
    const tcpWorkers = [0, 1].map((i) => WorkerProcess.start(tcp.server.url, `t${i}`, EMU, WITHOUT_NCCL));
    let tcpLosses: Map<number, number>;
    let tcpSpLosses: Map<number, number>;
    try {
      await tcp.waitFor(async () => (await tcp.idleWorkers()) >= 2, "TCP workers to register", 120_000);
      const rec = await runToEnd(tcp, { ...spec, output: "tcp" }, dir);
      assert.match(rec.ring_sizes?.[0]?.data_plane ?? "", /^tcp \(host staging: t0: libnccl\.so\.2 not found/);
      tcpLosses = lossesByStep(rec.output);
      // The blocks travel over the group's TCP link.
      const sp = await runToEnd(tcp, { ...spSpec, output: "tcp-sp" }, dir);
      const groups = sp.ring_sizes?.[0]?.sequence_data_planes ?? [];
      assert.equal(groups.length, 1, JSON.stringify(sp.ring_sizes));
      assert.match(groups[0]!, /^tcp \(host staging: t0: libnccl\.so\.2 not found/);
      tcpSpLosses = lossesByStep(sp.output);
    } finally {
      await Promise.all(tcpWorkers.map((w) => w.kill()));
      await tcp.stop();
    }

    const cluster = await TestCluster.start(0, { timing });
    const workers = [0, 1].map((i) => WorkerProcess.start(cluster.server.url, `p${i}`, EMU, WITH_NCCL));
    let dies: WorkerProcess | undefined;
    try {
      await cluster.waitFor(async () => (await cluster.idleWorkers()) >= 2, "NCCL workers to register", 120_000);
      const rec = await runToEnd(cluster, { ...spec, output: "nccl" }, dir);
      assert.equal(rec.ring_sizes?.[0]?.data_plane, "nccl");
      const ncclLosses = lossesByStep(rec.output);
      assert.equal(ncclLosses.size, 4);
      // Each sum of two ranks is one fp32 addition on either data plane; but the emulator shuffles the threads of
      // a block, so its atomic sums (the loss) round differently from run to run: agreement to fp32 rounding.
      assertSameLosses(ncclLosses, tcpLosses);
      for (const w of workers) assert.match(w.log, /"dataPlane":"nccl"/, w.log);

      // ZeRO-1 on NCCL: each bucket reduce-scattered in the backward, each rank's AdamW on its shard, the weights
      // all-gathered on the device. The same update as the unsharded ring, to fp32 rounding (the norm is summed in
      // another order); the checksum at step 4 holds both ranks' weights identical.
      const zero = await runToEnd(cluster, { ...spec, zero: 1, output: "nccl-zero" }, dir);
      assert.equal(zero.ring_sizes?.[0]?.data_plane, "nccl");
      assertSameLosses(lossesByStep(zero.output), ncclLosses, 1e-5);

      // Sequence parallelism on NCCL: a third worker, first in id order so the scheduler puts it in the ring (and
      // its group), dies as its third step begins: its neighbour's send/recv or all-reduce of that step fails on
      // the dead peer, and the ring re-forms from the step 2 checkpoint with a new communicator for the ring and
      // for the group. Every step, before and after, on the losses of the group over TCP.
      dies = WorkerProcess.start(cluster.server.url, "a-dies", EMU, {
        ...WITH_NCCL,
        RINGTUNE_FAILPOINT: "step:SIGKILL@3",
      });
      await cluster.waitFor(async () => (await cluster.idleWorkers()) >= 3, "the third worker to register", 120_000);
      const done = await runToEnd(cluster, { ...spSpec, output: "killed-sp" }, dir);
      assert.equal(done.ring_reformations, 1, "the ring re-formed once");
      assert.deepEqual(done.workers, ["p0", "p1"]);
      assert.deepEqual(
        done.ring_sizes?.map((r) => [r.data_plane, r.sequence_data_planes]),
        [
          ["nccl", ["nccl"]],
          ["nccl", ["nccl"]],
        ],
      );
      assert.match(dies.log, /"sequenceDataPlane":"nccl"/, "the killed worker's group ran on NCCL");
      for (const w of workers) assert.match(w.log, /"sequenceDataPlane":"nccl"/, w.log);
      assertResumedAtCheckpoint(cluster.startSteps(done.id), 2, spec.save_every);
      // The two data planes move the same blocks into the same arithmetic; a resumed run agrees to fp32 rounding.
      assertSameLosses(lossesByStep(done.output), tcpSpLosses, 1e-5);
      t.diagnostic(`formations: ${JSON.stringify(done.ring_sizes)}`);
    } catch (err) {
      throw new Error(
        `${(err as Error).message}\n${[...workers, ...(dies ? [dies] : [])].map((w) => w.log).join("\n")}`,
      );
    } finally {
      await Promise.all([...workers, ...(dies ? [dies] : [])].map((w) => w.kill()));
      await cluster.stop();
    }
  },
);
