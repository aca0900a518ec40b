// An error of the job itself fails it at once: a model file the workers cannot load is not retried (another
// start would fail the same way), and the job's message is the worker's own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { TestCluster, trainingFixture } from "../helpers/cluster.js";
import { TINY_BYTE_LLAMA } from "../helpers/tiny_model.js";

/** A model folder with a good config.json and a model.safetensors whose header length is absurd. */
function brokenModel(dir: string): string {
  const model = path.join(dir, "broken-model");
  mkdirSync(model);
  writeFileSync(path.join(model, "config.json"), JSON.stringify(TINY_BYTE_LLAMA));
  const file = Buffer.alloc(16);
  file.writeBigUInt64LE(2n ** 40n, 0);
  writeFileSync(path.join(model, "model.safetensors"), file);
  return model;
}

test(
  "a model file the workers cannot load fails the job at its first start, with the worker's message",
  { timeout: 180_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    const cluster = await TestCluster.start(2);
    try {
      const spec = { ...baseSpec, model: { path: brokenModel(dir) }, workers: 1, max_steps: 10, output: "broken" };
      const reply = await cluster.submit(spec, dir);
      assert.ok(reply.ok, reply.error);
      const done = await cluster.finished(reply.id!);
      assert.equal(done.status, "failed");
      assert.match(done.message!, /^worker w\d: assign: .*model\.safetensors/);
      assert.equal(done.attempts, 1, "failed at once, not retried");
      assert.equal(cluster.startSteps(done.id).length, 1, "prepared once");
      assert.ok(!/attempt \d of|gave up/.test(done.message!), done.message);
    } finally {
      await cluster.stop();
    }
  },
);
