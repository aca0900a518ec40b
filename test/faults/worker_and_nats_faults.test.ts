// Process faults at several points of a job, against a real nats-server and worker processes: the job's
// worker killed (-9) mid-training or as a checkpoint write begins, stopped (SIGSTOP) before the first step or
// in the final save (each re-forms the ring on the other worker without using up an attempt), and nats-server
// stopped mid-training, continued after the coordinator has declared the silent workers lost. Each job ends
// completed with an unbroken run's losses; a final/ already there stays whole while a save that replaces it hangs. Faults inside a command fire from the worker's RINGTUNE_FAILPOINT.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { TestCluster, trainingFixture, type JobRecordBody } from "../helpers/cluster.js";
import { assertSameLosses, lossesByStep } from "../helpers/losses.js";
import { killAllWorkerProcesses, WorkerProcess } from "../helpers/worker_process.js";

after(killAllWorkerProcesses);

/** A silent worker is lost after 8 s: short for the test, long enough for a loaded machine's pauses. */
const timing = { heartbeatMs: 500, lostAfterMs: 8000 };

interface Rig {
  dir: string;
  cluster: TestCluster;
  /** the worker the scheduler picks first (ids sort: "a-…" before "b-…") */
  first: WorkerProcess;
  second: WorkerProcess;
  step(id: string): Promise<number>;
}

interface FaultCase {
  name: string;
  /** the coordinator's timing, when the case needs other than `timing` */
  timing?: typeof timing & { leaseTtlMs?: number };
  /** environment of the first worker's process (a RINGTUNE_FAILPOINT that fires inside a command) */
  firstWorkerEnv?: NodeJS.ProcessEnv;
  /** before the job is submitted (a worker stopped now is still idle to the scheduler for a few seconds) */
  beforeSubmit?(rig: Rig): Promise<void> | void;
  /** while the job runs */
  during?(rig: Rig, id: string): Promise<void>;
  /** after the job ended */
  check(rig: Rig, done: JobRecordBody): Promise<void> | void;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function untilStep(rig: Rig, id: string, step: number): Promise<void> {
  await rig.cluster.waitFor(async () => (await rig.step(id)) >= step, `step ${step}`, 180_000);
}

const cases: FaultCase[] = [
  {
    name: "kill -9 of the job's worker mid-training: the ring re-forms on the other worker from the checkpoint",
    async during(rig, id) {
      await untilStep(rig, id, 7);
      await rig.first.kill();
    },
    check(rig, done) {
      assert.deepEqual(done.workers, [rig.second.id]);
      const starts = rig.cluster.startSteps(done.id);
      assert.deepEqual(starts.length, 2, `two starts: ${starts}`);
      assert.ok(starts[1]! >= 5 && starts[1]! % 5 === 0, `resumed at a checkpoint, not at ${starts[1]}`);
    },
  },
  {
    name: "SIGSTOP of the job's worker before its first step: the job starts over on the other worker",
    beforeSubmit(rig) {
      rig.first.pause();
    },
    async check(rig, done) {
      assert.deepEqual(done.workers, [rig.second.id]);
      const firstRing = rig.cluster.coordinatorLog.find((l) => l.msg === "starting job" && l.job === done.id);
      assert.deepEqual(firstRing?.workers, [rig.first.id], "the stopped worker was picked (it was still idle)");
      assert.deepEqual(rig.cluster.startSteps(done.id), [0, 0], "no step was made before it hung");
      // Continued, it finds its job gone and serves again.
      rig.first.resume();
      await rig.cluster.waitFor(async () => (await rig.cluster.idleWorkers()) >= 2, "the continued worker", 90_000);
    },
  },
  {
    name: "kill -9 of the job's worker as it begins the first checkpoint write: the job starts over on the other worker",
    firstWorkerEnv: { RINGTUNE_FAILPOINT: "save:SIGKILL" },
    check(rig, done) {
      assert.deepEqual(done.workers, [rig.second.id]);
      assert.deepEqual(rig.cluster.startSteps(done.id), [0, 0], "no checkpoint existed yet");
      assert.equal(done.ring_reformations, 1);
      const left = readdirSync(path.join(rig.dir, "faulted", "checkpoints"));
      assert.ok(left.length > 0 && left.every((d) => /^step-\d+$/.test(d)), `no temporary folder left: ${left}`);
    },
  },
  {
    name: "SIGSTOP of the job's worker in its final save: the job resumes on the other worker from the last checkpoint",
    // checkpoints at steps 5, 10 and 15 are the first three saves; the final model is the fourth
    firstWorkerEnv: { RINGTUNE_FAILPOINT: "save:SIGSTOP@4" },
    // A final/ already there (an earlier save's) stays whole while the save that replaces it hangs: the new
    // one is written beside it and renamed into place only once complete.
    async during(rig, id) {
      await untilStep(rig, id, 1);
      const final = path.join(rig.dir, "faulted", "final");
      mkdirSync(final);
      writeFileSync(path.join(final, "model.safetensors"), "the earlier final model");
      await rig.cluster.waitFor(
        async () => (await rig.cluster.record(id))?.message === "saving the final model",
        "the final save",
        180_000,
      );
      await pause(1000); // the hung worker's save has begun
      assert.equal(readFileSync(path.join(final, "model.safetensors"), "utf8"), "the earlier final model");
      assert.deepEqual(readdirSync(final), ["model.safetensors"]);
    },
    check(rig, done) {
      const output = path.join(rig.dir, "faulted");
      assert.ok(readFileSync(path.join(output, "final", "model.safetensors")).length > 1000, "the new model, whole");
      assert.ok(existsSync(path.join(output, "final", "config.json")));
      assert.ok(!existsSync(path.join(output, "final.saving")) && !existsSync(path.join(output, "final.replaced")));
      assert.deepEqual(done.workers, [rig.second.id]);
      assert.deepEqual(rig.cluster.startSteps(done.id), [0, 15]);
      assert.equal(done.ring_reformations, 1);
      assert.ok(
        rig.cluster.coordinatorLog.some((l) => l.msg === "worker lost" && l.worker === rig.first.id),
        "the coordinator saw the hung worker go silent",
      );
    },
  },
  {
    name: "SIGSTOP of nats-server mid-training, continued after 12 s: the job resumes and completes",
    // A lease outliving the outage: with the default 15 s the coordinator would rightly step down for a standby.
    timing: { ...timing, leaseTtlMs: 60_000 },
    async during(rig, id) {
      await untilStep(rig, id, 7);
      rig.cluster.server.pause();
      await pause(12_000); // past lostAfterMs: the coordinator hears no heartbeats meanwhile
      rig.cluster.server.resume();
    },
    check(rig, done) {
      assert.ok(rig.cluster.startSteps(done.id).length >= 1);
    },
  },
];

let unbroken: Map<number, number> | undefined;

for (const c of cases) {
  test(c.name, { timeout: 360_000 }, async () => {
    const { dir, baseSpec } = trainingFixture();
    const cluster = await TestCluster.start(0, { timing: c.timing ?? timing });
    const first = WorkerProcess.start(cluster.server.url, "a-first", [], c.firstWorkerEnv);
    const second = WorkerProcess.start(cluster.server.url, "b-second");
    const rig: Rig = {
      dir,
      cluster,
      first,
      second,
      step: async (id) => (await cluster.record(id).catch(() => undefined))?.step ?? 0,
    };
    try {
      await cluster.waitFor(async () => (await cluster.idleWorkers()) >= 2, "two worker processes", 120_000);
      const spec = { ...baseSpec, workers: 1, max_steps: 20, save_every: 5 };
      await c.beforeSubmit?.(rig);
      const reply = await cluster.submit({ ...spec, output: "faulted" }, dir);
      assert.ok(reply.ok, reply.error);
      await c.during?.(rig, reply.id!);
      const done = await cluster.finished(reply.id!, 240_000).catch(async (err: Error) => {
        const rec = await cluster.record(reply.id!).catch(() => undefined);
        const tail = cluster.coordinatorLog.slice(-25).map((l) => JSON.stringify(l));
        const workers = `first worker:\n${first.log.slice(-3000)}\nsecond worker:\n${second.log.slice(-3000)}`;
        throw new Error(`${err.message}; record: ${JSON.stringify(rec)}; coordinator:\n${tail.join("\n")}\n${workers}`);
      });
      assert.equal(done.status, "completed", done.message);
      assert.equal(done.attempts, 1, "the fault used up no attempt");
      await c.check(rig, done);
      unbroken ??= lossesByStep((await cluster.run({ ...spec, output: "unbroken" }, dir)).output);
      assertSameLosses(lossesByStep(path.join(dir, "faulted")), unbroken);
    } finally {
      await first.kill();
      await second.kill();
      await cluster.stop();
    }
  });
}
