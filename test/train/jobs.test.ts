// Job intake and lifecycle: refusals that name the key, waiting for workers, cancel, checkpoint resume,
// and a coordinator restart or a lost worker: the job resumes at its last checkpoint (asserted from the
// coordinator's log) and reproduces an unbroken run's losses step by step.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { readMetrics, TestCluster, trainingFixture } from "../helpers/cluster.js";
import { assertResumedAtCheckpoint, assertSameLosses, lossesByStep } from "../helpers/losses.js";

test("a bad spec is refused with its reason, naming the key", { timeout: 60_000 }, async () => {
  const { dir, baseSpec } = trainingFixture();
  const cluster = await TestCluster.start(0);
  try {
    const unknown = await cluster.submit({ ...baseSpec, learning_rate: 1e-3 }, dir);
    assert.equal(unknown.ok, false);
    assert.match(unknown.error!, /unknown key 'learning_rate'/);
    const badType = await cluster.submit({ ...baseSpec, workers: 0 }, dir);
    assert.match(badType.error!, /workers: .*(>=|greater|positive|too small)/i);
    const missing = await cluster.submit({ ...baseSpec, data: [{ path: "nope.jsonl" }] }, dir);
    assert.match(missing.error!, /data\[0\]\.path: no such file or folder .*nope\.jsonl/);
  } finally {
    await cluster.stop();
  }
});

test("a job with no workers waits and says so, and can be canceled", { timeout: 60_000 }, async () => {
  const { dir, baseSpec } = trainingFixture();
  const cluster = await TestCluster.start(0);
  try {
    const reply = await cluster.submit({ ...baseSpec, workers: 2, max_steps: 2 }, dir);
    assert.equal(reply.ok, true);
    await cluster.waitFor(async () => (await cluster.record(reply.id!))?.status === "waiting", "the job to wait");
    assert.equal((await cluster.record(reply.id!))!.message, "waiting for 2 idle worker(s): 0 idle of 0 registered");
    assert.equal((await cluster.cancel(reply.id!)).ok, true);
    assert.equal((await cluster.record(reply.id!))!.status, "canceled");
    assert.match((await cluster.cancel(reply.id!)).error!, /already canceled/);
  } finally {
    await cluster.stop();
  }
});

test(
  "the checkpoint written at step k, resumed, gives the same losses at steps k+1..k+5",
  { timeout: 120_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    const cluster = await TestCluster.start(2);
    try {
      const spec = { ...baseSpec, workers: 2, max_steps: 10, save_every: 5 };
      const unbroken = await cluster.run({ ...spec, output: "unbroken" }, dir);
      const ckpt = path.join(unbroken.output, "checkpoints", "step-000005");
      assert.ok(
        existsSync(path.join(ckpt, "optimizer.safetensors")) && existsSync(path.join(ckpt, "trainer_state.json")),
      );
      assert.ok(!existsSync(`${ckpt}.tmp`), "no temporary folder is left behind");
      const resumed = await cluster.run({ ...spec, output: "resumed", resume_from: ckpt }, dir);
      const loss = (out: string) =>
        new Map(
          readMetrics(out)
            .filter((m) => m.loss !== undefined)
            .map((m) => [m.step, m.loss!]),
        );
      const a = loss(unbroken.output);
      const b = loss(resumed.output);
      assert.deepEqual([...b.keys()], [6, 7, 8, 9, 10], "the resumed run starts after the checkpoint");
      for (const step of b.keys())
        assert.ok(
          Math.abs(a.get(step)! - b.get(step)!) <= 1e-6 * Math.abs(a.get(step)!),
          `step ${step}: ${a.get(step)} vs ${b.get(step)}`,
        );
    } finally {
      await cluster.stop();
    }
  },
);

test(
  "a restarted coordinator resumes a running job at its last checkpoint, with an unbroken run's losses",
  { timeout: 240_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    const cluster = await TestCluster.start(1);
    try {
      const spec = { ...baseSpec, workers: 1, max_steps: 60, save_every: 4 };
      const reply = await cluster.submit({ ...spec, output: "restart" }, dir);
      await cluster.waitFor(
        async () => ((await cluster.record(reply.id!))?.last_checkpoint?.step ?? 0) >= 4,
        "a first checkpoint",
      );
      await cluster.coordinator!.close();
      const interrupted = await cluster.record(reply.id!);
      assert.equal(interrupted!.status, "running");
      const from = interrupted!.last_checkpoint!.step;
      await cluster.startCoordinator();
      const done = await cluster.finished(reply.id!);
      assert.equal(done.status, "completed", done.message);
      // Where each start began: a job that silently started over from step 0 would show [0, 0].
      assert.deepEqual(cluster.startSteps(reply.id!), [0, from], "the second start resumes at the checkpoint");
      const unbroken = await cluster.run({ ...spec, output: "unbroken" }, dir);
      assertSameLosses(lossesByStep(path.join(dir, "restart")), lossesByStep(unbroken.output));
    } finally {
      await cluster.stop();
    }
  },
);

test(
  "a worker lost mid-job: the job resumes at its last checkpoint on the others, with an unbroken run's losses",
  { timeout: 240_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    const cluster = await TestCluster.start(3, { timing: { heartbeatMs: 500, lostAfterMs: 8000 } });
    try {
      const spec = { ...baseSpec, workers: 2, max_steps: 40, save_every: 5 };
      const reply = await cluster.submit({ ...spec, output: "lost" }, dir);
      await cluster.waitFor(
        async () => ((await cluster.record(reply.id!))?.last_checkpoint?.step ?? 0) >= 5,
        "a first checkpoint",
      );
      const before = (await cluster.record(reply.id!))!;
      const victim = before.workers[1]!;
      await cluster.workers.find((w) => w.id === victim)!.close(); // its process is gone: no answers, no heartbeats
      const done = await cluster.finished(reply.id!);
      assert.equal(done.status, "completed", done.message);
      assert.equal(done.attempts, 1, "a lost worker uses up no attempt");
      assert.equal(done.ring_reformations, 1);
      assert.ok(!done.workers.includes(victim), `the lost worker ${victim} is not in the final ring (${done.workers})`);
      assertResumedAtCheckpoint(cluster.startSteps(reply.id!), before.last_checkpoint!.step, spec.save_every);
      const unbroken = await cluster.run({ ...spec, output: "unbroken" }, dir);
      assertSameLosses(lossesByStep(path.join(dir, "lost")), lossesByStep(unbroken.output));
    } finally {
      await cluster.stop();
    }
  },
);
