// A model that takes longer to build than the coordinator waits for a silent worker: the build runs in
// native threads, so the worker's heartbeats keep flowing, it is never declared lost, and the job runs once.
// The model stays small; the lost-worker threshold is lowered to a fraction of the time this machine takes
// to build it, measured first in this same process.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { parseHfConfig } from "../../hf/hf_config.js";
import { initModel } from "../../hf/hf_model.js";
import { decodeMessage, subjects, WorkerHeartbeat } from "../../proto/mod.js";
import { TestCluster, trainingFixture } from "../helpers/cluster.js";
import { TINY_BYTE_LLAMA } from "../helpers/tiny_model.js";

/**
 * About 115M parameters: over a second to allocate and initialise even on an idle CPU (gradients and moments
 * come later, as untouched pages), so the build outlasts the lost-worker threshold's 400 ms floor.
 */
const MODEL = {
  ...TINY_BYTE_LLAMA,
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 8,
  initializer_range: 0.02,
};
/** What the worker does before it can join a ring, timed here: create, initialise, allocate the training state. */
async function timeBuild(): Promise<number> {
  const began = performance.now();
  const model = await initModel(parseHfConfig(MODEL, "model.json"), 3);
  await model.prepareTraining();
  return performance.now() - began;
}

test(
  "a model that takes longer to build than the lost-worker threshold trains without a requeue, its build shown",
  { timeout: 600_000 },
  async () => {
    const buildMs = await timeBuild();
    const lostAfterMs = Math.max(400, Math.round(buildMs / 3));
    const timing = { heartbeatMs: Math.max(50, Math.round(lostAfterMs / 8)), lostAfterMs };
    const { dir, baseSpec } = trainingFixture();
    writeFileSync(path.join(dir, "model.json"), JSON.stringify(MODEL));
    const cluster = await TestCluster.start(1, { timing });
    const building: { at: number; activity: string }[] = [];
    cluster.client.subscribe(subjects.workerHeartbeatAll, {
      callback: (_err, msg) => {
        const hb = decodeMessage(WorkerHeartbeat, msg.data);
        if (hb.activity && /^(allocating|initialising)/.test(hb.activity))
          building.push({ at: hb.sent_at_ms, activity: hb.activity });
      },
    });
    try {
      const reply = await cluster.submit(
        { ...baseSpec, global_batch_rows: 2, micro_batch_rows: 1, max_steps: 2, output: "slow-build" },
        dir,
      );
      assert.ok(reply.ok, reply.error);
      const messages = new Set<string>();
      await cluster.waitFor(async () => {
        const rec = await cluster.record(reply.id!);
        if (rec?.message) messages.add(rec.message);
        return rec?.status === "running" || (!!rec && ["completed", "failed", "canceled"].includes(rec.status));
      }, "the ring to form");
      const done = await cluster.finished(reply.id!, 540_000);
      assert.equal(done.status, "completed", done.message);
      assert.equal(done.attempts, 1, "one start: the worker was never declared lost");
      const lost = cluster.coordinatorLog.filter((l) => l.msg === "worker lost" || l.msg === "ring failed; requeued");
      assert.deepEqual(lost, [], "no loss and no requeue in the coordinator's log");

      // The premise: the worker was building for longer than a silent worker is given, heartbeating throughout.
      assert.ok(building.length >= 2, `heartbeats during the build: ${JSON.stringify(building)}`);
      const span = building.at(-1)!.at - building[0]!.at;
      assert.ok(span > lostAfterMs, `the build was heartbeated over ${span} ms, more than the ${lostAfterMs} ms limit`);
      // And the job's record said what the worker was doing while the ring formed.
      const shown = [...messages].filter((m) =>
        /^forming a ring of 1 worker\(s\): w0 (allocating|initialising)/.test(m),
      );
      assert.ok(shown.length > 0, `job messages seen: ${JSON.stringify([...messages])}`);
    } finally {
      await cluster.stop();
    }
  },
);
