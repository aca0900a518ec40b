// Activation checkpointing and ZeRO-1 change where state lives, never the training: a whole job with either
// (ZeRO-1 on 2 and 3 workers, where each worker updates only its shard of the AdamW moments) follows the
// plain one-worker run's losses and ends at its weights; a ZeRO-1 checkpoint holds the full state, so it
// resumes on a different worker count, sharded or not, with the unbroken run's losses.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { readSafetensorsHeader, readTensorsF32 } from "../../hf/safetensors.js";
import { readMetrics, TestCluster, trainingFixture } from "../helpers/cluster.js";

async function finalWeights(output: string): Promise<Map<string, Float32Array>> {
  return readTensorsF32(await readSafetensorsHeader(path.join(output, "final", "model.safetensors")));
}

function lossByStep(output: string): Map<number, number> {
  return new Map(
    readMetrics(output)
      .filter((m) => m.loss !== undefined)
      .map((m) => [m.step, m.loss!]),
  );
}

function maxRelativeLossDiff(a: Map<number, number>, b: Map<number, number>): number {
  let worst = 0;
  for (const [step, loss] of b) worst = Math.max(worst, Math.abs(loss - a.get(step)!) / Math.abs(a.get(step)!));
  return worst;
}

function maxWeightDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let worst = 0;
  for (const [name, w] of a) {
    const other = b.get(name);
    assert.ok(other, `final weights lack ${name}`);
    for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(w[i]! - other[i]!));
  }
  return worst;
}

test(
  "activation checkpointing, and ZeRO-1 on 2 and 3 workers, give the plain run's losses and weights; " +
    "a ZeRO-1 checkpoint resumes on 2 sharded workers and on 1 worker",
  { timeout: 600_000 },
  async (t) => {
    const { dir, baseSpec } = trainingFixture();
    const cluster = await TestCluster.start(3);
    try {
      const steps = 12;
      const spec = { ...baseSpec, max_steps: steps, save_every: 6 };
      const plain = await cluster.run({ ...spec, workers: 1, output: "plain" }, dir);
      const base = lossByStep(plain.output);
      const baseWeights = await finalWeights(plain.output);
      assert.equal(base.size, steps);
      const variants: { name: string; keys: Record<string, unknown> }[] = [
        { name: "activation checkpointing, 1 worker", keys: { workers: 1, activation_checkpointing: true } },
        { name: "ZeRO-1, 2 workers", keys: { workers: 2, zero: 1 } },
        {
          name: "ZeRO-1 + activation checkpointing, 3 workers",
          keys: { workers: 3, zero: 1, activation_checkpointing: true },
        },
      ];
      let zero3Output = "";
      for (const [i, v] of variants.entries()) {
        const rec = await cluster.run({ ...spec, ...v.keys, output: `variant-${i}` }, dir);
        assert.equal(rec.step, steps);
        const lossDiff = maxRelativeLossDiff(base, lossByStep(rec.output));
        const weightDiff = maxWeightDiff(baseWeights, await finalWeights(rec.output));
        t.diagnostic(
          `${v.name}: max relative loss diff ${lossDiff.toExponential(2)}, weights ${weightDiff.toExponential(2)}`,
        );
        assert.ok(lossDiff < 1e-5, `${v.name}: max relative loss difference ${lossDiff}`);
        assert.ok(weightDiff < 1e-4, `${v.name}: max final weight difference ${weightDiff}`);
        if (v.keys.workers === 3) zero3Output = rec.output;
      }

      // The 3-worker ZeRO-1 checkpoint at step 6, resumed on other worker counts.
      const ckpt = path.join(zero3Output, "checkpoints", "step-000006");
      const unbroken = lossByStep(zero3Output);
      for (const keys of [
        { workers: 2, zero: 1 },
        { workers: 1, zero: 0 },
      ]) {
        const resumed = await cluster.run(
          { ...spec, ...keys, output: `resumed-${keys.workers}`, resume_from: ckpt },
          dir,
        );
        const losses = lossByStep(resumed.output);
        assert.deepEqual([...losses.keys()], [7, 8, 9, 10, 11, 12], "the resumed run starts after the checkpoint");
        const diff = maxRelativeLossDiff(unbroken, losses);
        t.diagnostic(
          `resumed on ${keys.workers} worker(s), zero ${keys.zero}: max relative loss diff ${diff.toExponential(2)}`,
        );
        // A checkpoint without the other ranks' moments would restart them at zero: the losses would part.
        assert.ok(diff < 1e-5, `resumed on ${keys.workers} worker(s): max relative loss difference ${diff}`);
        const weightDiff = maxWeightDiff(baseWeights, await finalWeights(resumed.output));
        assert.ok(weightDiff < 1e-4, `resumed on ${keys.workers} worker(s): max final weight difference ${weightDiff}`);
      }
    } finally {
      await cluster.stop();
    }
  },
);
