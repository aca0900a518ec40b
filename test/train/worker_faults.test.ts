// Faults a ring meets in the field: a worker process that hangs (SIGSTOP: sockets open, no heartbeats, no
// replies) mid-job, and workers lost again and again until the job's start budget is spent.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { MAX_ATTEMPTS } from "../../coordinator/train/run_job.js";
import { TestCluster, trainingFixture } from "../helpers/cluster.js";
import { assertResumedAtCheckpoint, assertSameLosses, lossesByStep } from "../helpers/losses.js";
import { killAllWorkerProcesses, WorkerProcess } from "../helpers/worker_process.js";

// Also when a test times out and its own cleanup never runs: a SIGSTOPped worker must not outlive the file.
after(killAllWorkerProcesses);

/** A silent worker is declared lost after 4 s rather than 10: the tests wait less, the load can still spike. */
const timing = { heartbeatMs: 500, lostAfterMs: 8000 };

test(
  "a hung worker process mid-job: the job is requeued on the remaining workers and resumes at its checkpoint",
  { timeout: 300_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    const cluster = await TestCluster.start(2, { timing });
    // The scheduler takes idle workers in id order: "a-hung" sorts before w0 and w1, so it is in the ring.
    const hung = WorkerProcess.start(cluster.server.url, "a-hung");
    try {
      await cluster.waitFor(async () => (await cluster.idleWorkers()) >= 3, `worker process to register:\n${hung.log}`);
      const spec = { ...baseSpec, workers: 2, max_steps: 40, save_every: 5 };
      const reply = await cluster.submit({ ...spec, output: "hung" }, dir);
      await cluster.waitFor(
        async () => ((await cluster.record(reply.id!))?.last_checkpoint?.step ?? 0) >= 5,
        "a first checkpoint",
      );
      const before = (await cluster.record(reply.id!))!;
      assert.deepEqual(before.workers, ["a-hung", "w0"]);
      hung.pause();
      const done = await cluster.finished(reply.id!, 180_000);
      assert.equal(done.status, "completed", done.message);
      assert.equal(done.attempts, 2);
      assert.deepEqual(done.workers, ["w0", "w1"], "the job finished on the two workers that still answer");
      assert.ok(
        cluster.coordinatorLog.some((l) => l.msg === "worker lost" && l.worker === "a-hung"),
        "the coordinator saw the hung worker go silent",
      );
      assertResumedAtCheckpoint(cluster.startSteps(reply.id!), before.last_checkpoint!.step, spec.save_every);
      const unbroken = await cluster.run({ ...spec, output: "unbroken" }, dir);
      assertSameLosses(lossesByStep(path.join(dir, "hung")), lossesByStep(unbroken.output));
    } finally {
      await hung.kill();
      await cluster.stop();
    }
  },
);

test(
  `a job whose worker is lost at each of its ${MAX_ATTEMPTS} starts ends failed, saying why and that it gave up`,
  { timeout: 240_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    const cluster = await TestCluster.start(MAX_ATTEMPTS, { timing });
    try {
      // Far more steps than the test lets it run: every start is cut short by a lost worker.
      const reply = await cluster.submit({ ...baseSpec, workers: 1, max_steps: 5000, output: "doomed" }, dir);
      const lost: string[] = [];
      for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        let running: string | undefined;
        await cluster.waitFor(async () => {
          const rec = await cluster.record(reply.id!);
          if (rec?.status === "running" && rec.attempts === attempt && rec.step >= 1) running = rec.workers[0];
          return running !== undefined;
        }, `start ${attempt} to run a step`);
        lost.push(running!);
        await cluster.workers.find((w) => w.id === running)!.close();
      }
      const done = await cluster.finished(reply.id!, 120_000);
      assert.equal(done.status, "failed", `status ${done.status}: ${done.message}`);
      assert.equal(done.attempts, MAX_ATTEMPTS);
      assert.equal(new Set(lost).size, MAX_ATTEMPTS, `a different worker each start: ${lost}`);
      assert.match(done.message!, new RegExp(`worker ${lost.at(-1)} (stopped sending heartbeats|did not answer)`));
      assert.match(done.message!, new RegExp(`gave up after ${MAX_ATTEMPTS} starts`));
    } finally {
      await cluster.stop();
    }
  },
);
