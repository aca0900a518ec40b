// Faults a ring meets in the field: a worker process that hangs (SIGSTOP: sockets open, no heartbeats, no
// replies) mid-job, and workers lost again and again, more often than the job's attempts would allow.
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
      assert.equal(done.attempts, 1, "a hung worker uses up no attempt");
      assert.equal(done.ring_reformations, 1);
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
  `a worker lost at each of ${MAX_ATTEMPTS} starts in a row uses up no attempt: the ring re-forms and the job completes`,
  { timeout: 240_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    const cluster = await TestCluster.start(MAX_ATTEMPTS + 1, { timing });
    try {
      const reply = await cluster.submit({ ...baseSpec, workers: 1, max_steps: 30, output: "survivor" }, dir);
      const lost: string[] = [];
      for (let reformations = 0; reformations < MAX_ATTEMPTS; reformations++) {
        let running: string | undefined;
        await cluster.waitFor(
          async () => {
            const rec = await cluster.record(reply.id!);
            const current = rec?.status === "running" && (rec.ring_reformations ?? 0) === reformations;
            if (current && rec.step >= 1) running = rec.workers[0];
            return running !== undefined;
          },
          `ring ${reformations + 1} to run a step`,
        );
        lost.push(running!);
        await cluster.workers.find((w) => w.id === running)!.close();
      }
      const done = await cluster.finished(reply.id!, 120_000);
      assert.equal(done.status, "completed", `status ${done.status}: ${done.message}`);
      assert.equal(done.attempts, 1, "no start was counted against the job");
      assert.equal(done.ring_reformations, MAX_ATTEMPTS);
      assert.equal(new Set(lost).size, MAX_ATTEMPTS, `a different worker each time: ${lost}`);
      assert.ok(!lost.includes(done.workers[0]!), `finished on the worker never lost, not ${done.workers}`);
    } finally {
      await cluster.stop();
    }
  },
);
