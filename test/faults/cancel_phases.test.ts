// Cancel reaches every phase of a job, and each ends with the job canceled, the worker free for the next
// job and nothing half-written: data preparation (a job still reading and tokenizing a large dataset is
// canceled within moments, its threads terminated, not left reading), model loading (the worker's build
// stops at its next phase and never joins the ring) and a checkpoint save (the unfinished checkpoint is
// removed only once rank 0 has stopped writing into it, so nothing of it is left beside the finished ones).
import assert from "node:assert/strict";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { pino } from "pino";
import { Worker } from "../../worker/main.js";
import { decodeMessage, subjects, WorkerHeartbeat } from "../../proto/mod.js";
import { TestCluster, trainingFixture } from "../helpers/cluster.js";
import { largeDataset } from "../helpers/large_dataset.js";
import { TINY_BYTE_LLAMA } from "../helpers/tiny_model.js";

test("cancel during data preparation stops it within seconds; the next job runs", { timeout: 180_000 }, async () => {
  const { dir, baseSpec } = trainingFixture();
  await largeDataset(path.join(dir, "large.jsonl"), 120_000);
  const cluster = await TestCluster.start(1);
  try {
    const reply = await cluster.submit(
      { ...baseSpec, data: [{ path: "large.jsonl" }], workers: 1, max_steps: 2, output: "large" },
      dir,
    );
    assert.ok(reply.ok, reply.error);
    await cluster.waitFor(async () => (await cluster.record(reply.id!))?.status === "preparing", "preparing");
    await new Promise((r) => setTimeout(r, 500)); // well inside the reading
    const asked = Date.now();
    assert.ok((await cluster.cancel(reply.id!)).ok);
    const rec = await cluster.finished(reply.id!, 20_000);
    const tookMs = Date.now() - asked;
    assert.equal(rec.status, "canceled", rec.message);
    assert.ok(tookMs < 5000, `cancel took ${tookMs} ms`);
    const next = await cluster.run({ ...baseSpec, workers: 1, max_steps: 2, output: "next" }, dir);
    assert.equal(next.status, "completed");
  } finally {
    await cluster.stop();
  }
});

/** A cluster with one worker whose log lines are kept (the worker's side of a cancel is in its log). */
async function clusterWithLoggedWorker(): Promise<{
  cluster: TestCluster;
  workerLog: { msg?: string; job?: string }[];
}> {
  const cluster = await TestCluster.start(0, { timing: { heartbeatMs: 50, lostAfterMs: 10_000 } });
  const workerLog: { msg?: string; job?: string }[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => void workerLog.push(JSON.parse(line)) });
  cluster.workers.push(await Worker.start({ natsUrl: cluster.server.url, id: "w0", log }));
  await cluster.waitFor(async () => (await cluster.idleWorkers()) === 1, "the worker to register");
  return { cluster, workerLog };
}

/** About 60M parameters: half a second or more to allocate and initialise, so a cancel lands inside the build. */
const SLOW_TO_BUILD = {
  ...TINY_BYTE_LLAMA,
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 6,
  num_attention_heads: 8,
  initializer_range: 0.02,
};

test(
  "cancel during model loading stops the build before the ring; the worker takes the next job",
  { timeout: 180_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    writeFileSync(path.join(dir, "slow.json"), JSON.stringify(SLOW_TO_BUILD));
    const { cluster, workerLog } = await clusterWithLoggedWorker();
    try {
      let building = false;
      cluster.client.subscribe(subjects.workerHeartbeatAll, {
        callback: (_err, msg) => {
          const activity = decodeMessage(WorkerHeartbeat, msg.data).activity ?? "";
          if (/^(allocating|initialising)/.test(activity)) building = true;
        },
      });
      const reply = await cluster.submit(
        { ...baseSpec, model: { init: { config: "slow.json", seed: 3 } }, workers: 1, max_steps: 2, output: "slow" },
        dir,
      );
      assert.ok(reply.ok, reply.error);
      await cluster.waitFor(async () => building, "the worker to be building the model");
      assert.ok((await cluster.cancel(reply.id!)).ok);
      const rec = await cluster.finished(reply.id!, 60_000);
      assert.equal(rec.status, "canceled", rec.message);
      const ofJob = workerLog.filter((l) => l.job === reply.id).map((l) => l.msg);
      assert.ok(ofJob.includes("stopping the model build"), `worker log: ${JSON.stringify(ofJob)}`);
      assert.ok(!ofJob.includes("joining ring"), `the canceled build went on to the ring: ${JSON.stringify(ofJob)}`);
      // nothing was written for it, and the worker is free
      assert.ok(!existsSync(path.join(dir, "slow", "checkpoints")) && !existsSync(path.join(dir, "slow", "final")));
      const next = await cluster.run({ ...baseSpec, workers: 1, max_steps: 2, output: "after-load" }, dir);
      assert.equal(next.status, "completed");
    } finally {
      await cluster.stop();
    }
  },
);

/** About 17M parameters: a checkpoint (weights and both moments) of some 200 MB, far from instant to write. */
const SLOW_TO_SAVE = {
  ...TINY_BYTE_LLAMA,
  hidden_size: 512,
  intermediate_size: 2048,
  num_hidden_layers: 4,
  num_attention_heads: 8,
  num_key_value_heads: 8,
};

test(
  "cancel during a checkpoint save leaves no unfinished checkpoint; the worker takes the next job",
  { timeout: 240_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    writeFileSync(path.join(dir, "big.json"), JSON.stringify(SLOW_TO_SAVE));
    const { cluster } = await clusterWithLoggedWorker();
    try {
      const spec = {
        ...baseSpec,
        model: { init: { config: "big.json", seed: 3 } },
        workers: 1,
        global_batch_rows: 2,
        micro_batch_rows: 1,
        seq_len: 32,
        max_steps: 4,
        save_every: 1,
        output: "saving",
      };
      const reply = await cluster.submit(spec, dir);
      assert.ok(reply.ok, reply.error);
      const checkpoints = path.join(dir, "saving", "checkpoints");
      const unfinished = () =>
        existsSync(checkpoints) ? readdirSync(checkpoints).filter((f) => f.endsWith(".tmp")) : [];
      // the first checkpoint is being written: its temporary folder is there
      await cluster.waitFor(async () => unfinished().length > 0, "a checkpoint save to begin", 120_000);
      assert.ok((await cluster.cancel(reply.id!)).ok);
      const rec = await cluster.finished(reply.id!, 120_000);
      assert.equal(rec.status, "canceled", rec.message);
      // Nothing half-written: no temporary folder, and every published checkpoint whole (a resume takes one).
      assert.deepEqual(unfinished(), [], "an unfinished checkpoint was left");
      for (const f of readdirSync(checkpoints))
        assert.ok(existsSync(path.join(checkpoints, f, "trainer_state.json")), `${f} is not whole`);
      if (rec.last_checkpoint) assert.ok(existsSync(path.join(rec.last_checkpoint.dir, "trainer_state.json")));
      const next = await cluster.run({ ...baseSpec, workers: 1, max_steps: 2, output: "after-save" }, dir);
      assert.equal(next.status, "completed");
    } finally {
      await cluster.stop();
    }
  },
);
