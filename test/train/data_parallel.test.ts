// N workers give one worker's training: the loss is normalised over the whole global batch and every rank
// applies the same AdamW step to the same all-reduced gradient.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { readSafetensorsHeader, readTensorsF32 } from "../../hf/safetensors.js";
import { readMetrics, TestCluster, trainingFixture } from "../helpers/cluster.js";

async function finalWeights(output: string): Promise<Map<string, Float32Array>> {
  return readTensorsF32(await readSafetensorsHeader(path.join(output, "final", "model.safetensors")));
}

test(
  "1, 2 and 3 workers give the same loss curve over 20 steps and the same final weights",
  { timeout: 300_000 },
  async (t) => {
    const { dir, baseSpec } = trainingFixture();
    const cluster = await TestCluster.start(3);
    try {
      const runs = [];
      for (const workers of [1, 2, 3]) {
        // global_batch_rows 6, micro_batch_rows 2: 3 micro-batches on one worker, 2 on two, 1 each on three
        const rec = await cluster.run(
          { ...baseSpec, workers, max_steps: 20, eval_every: 10, output: `run-${workers}` },
          dir,
        );
        assert.equal(rec.step, 20);
        runs.push({ workers, metrics: readMetrics(rec.output), weights: await finalWeights(rec.output) });
      }
      const losses = (m: { step: number; loss?: number }[]) =>
        m.filter((l) => l.loss !== undefined).map((l) => l.loss!);
      const base = losses(runs[0]!.metrics);
      assert.equal(base.length, 20);
      assert.ok(base[19]! < base[0]! - 0.3, `the job learns: loss ${base[0]} -> ${base[19]}`);
      for (const r of runs.slice(1)) {
        const curve = losses(r.metrics);
        const worst = Math.max(...curve.map((l, i) => Math.abs(l - base[i]!) / Math.abs(base[i]!)));
        assert.ok(worst < 1e-5, `${r.workers} workers: max relative loss difference ${worst.toExponential(2)}`);
        let maxDiff = 0;
        for (const [name, w] of runs[0]!.weights) {
          const other = r.weights.get(name)!;
          for (let i = 0; i < w.length; i++) maxDiff = Math.max(maxDiff, Math.abs(w[i]! - other[i]!));
        }
        assert.ok(maxDiff < 1e-4, `${r.workers} workers: max final weight difference ${maxDiff.toExponential(2)}`);
        t.diagnostic(
          `${r.workers} workers vs 1: max relative loss diff ${worst.toExponential(2)}, max weight diff ${maxDiff.toExponential(2)}`,
        );
        const val = (m: typeof r.metrics) => m.filter((l) => l.val_loss !== undefined).map((l) => l.val_loss!);
        assert.deepEqual(val(r.metrics).length, 2);
        assert.ok(Math.abs(val(r.metrics)[1]! - val(runs[0]!.metrics)[1]!) < 1e-4);
      }
    } finally {
      await cluster.stop();
    }
  },
);
