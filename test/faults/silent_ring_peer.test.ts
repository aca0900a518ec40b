// SIGSTOP of a worker mid-job, with the coordinator's heartbeat check set far beyond the ring's timeout: its
// ring neighbour fails the step with "ring peer wp did not answer within 2 s" instead of hanging, and the
// coordinator treats the silent worker as lost: the job is requeued from its last checkpoint at once (no
// wait on the stopped worker's release) and completes on a fresh ring without it.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { pino } from "pino";
import { TestCluster, trainingFixture, type LogLine } from "../helpers/cluster.js";
import { killAllWorkerProcesses, WorkerProcess } from "../helpers/worker_process.js";
import { Worker } from "../../worker/main.js";

after(killAllWorkerProcesses);

test(
  "a stopped worker fails its ring neighbour's step within ring_timeout_s, naming it; the job resumes without it",
  { timeout: 300_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    // Heartbeats would catch the stopped worker only after two minutes: the ring's own timeout must act first.
    const cluster = await TestCluster.start(1, { timing: { lostAfterMs: 120_000 } });
    // It stops itself (SIGSTOP) as its 8th step begins: after the checkpoint at step 5 and before that step's
    // all-reduce, so its ring neighbour is left waiting on it (a pause from outside could land in a checkpoint
    // write, where only the two-minute heartbeat check would notice).
    const stopped = WorkerProcess.start(cluster.server.url, "wp", [], { RINGTUNE_FAILPOINT: "step:SIGSTOP@8" });
    let spare: Worker | undefined;
    try {
      await cluster.waitFor(async () => (await cluster.idleWorkers()) >= 2, "both workers to register", 120_000);
      const spec = { ...baseSpec, workers: 2, max_steps: 30, save_every: 5, ring_timeout_s: 2, output: "out" };
      const reply = await cluster.submit(spec, dir);
      assert.ok(reply.ok, reply.error);
      const id = reply.id!;
      // The record's message moves on to "waiting for workers" at once; the coordinator's log keeps the reason.
      let requeue: LogLine | undefined;
      await cluster.waitFor(
        async () => {
          requeue = cluster.coordinatorLog.find((l) => l.job === id && l.msg === "start failed; requeued");
          return requeue !== undefined;
        },
        "the step to fail naming the stopped worker",
        60_000,
      );
      const err = requeue!.err as { message?: string } | undefined;
      // Told by the step's reply or, often first, by w0's own report that its ring broke (no command named).
      assert.match(err?.message ?? "", /^worker w0: (step: )?ring peer wp did not answer within 2 s/);
      assert.equal(requeue!.kind, "worker_lost");
      assert.deepEqual(requeue!.gone, ["wp"]);
      const record = await cluster.record(id);
      assert.equal(record?.attempts ?? 0, 0, "a lost worker does not use up a start");
      assert.equal(record?.ring_reformations, 1);
      // A second idle worker for the new ring; the stopped one is not scheduled again.
      spare = await Worker.start({ natsUrl: cluster.server.url, id: "w1", log: pino({ level: "silent" }) });
      const done = await cluster.finished(id, 180_000);
      assert.equal(done.status, "completed", done.message);
      assert.deepEqual(done.workers, ["w0", "w1"]);
      const starts = cluster.startSteps(id);
      assert.equal(starts.length, 2, `started twice, at steps ${starts.join(", ")}`);
      assert.ok(starts[1]! >= 5 && starts[1]! % 5 === 0, `resumed at a checkpoint, not at step ${starts[1]}`);
    } finally {
      await stopped.kill();
      await spare?.close();
      await cluster.stop();
    }
  },
);
