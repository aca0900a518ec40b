// Whole jobs under sequence parallelism: 2 workers holding halves of every row (sequence_parallel: 2), and
// 2 data-parallel groups of 2 (4 workers), follow one worker's loss curve over 20 steps.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readMetrics, TestCluster, trainingFixture } from "../helpers/cluster.js";

test(
  "sequence_parallel 2 (2 workers) and 2 DP x 2 SP (4 workers) end at one worker's losses after 20 steps",
  { timeout: 900_000 },
  async (t) => {
    const { dir, baseSpec } = trainingFixture();
    const cluster = await TestCluster.start(4);
    try {
      const losses = async (workers: number, sp: number) => {
        const rec = await cluster.run(
          {
            ...baseSpec,
            workers,
            sequence_parallel: sp,
            max_steps: 20,
            eval_every: 20,
            output: `run-${workers}-${sp}`,
          },
          dir,
        );
        assert.equal(rec.step, 20);
        const m = readMetrics(rec.output);
        return {
          train: m.filter((l) => l.loss !== undefined).map((l) => l.loss!),
          val: m.filter((l) => l.val_loss !== undefined).map((l) => l.val_loss!),
        };
      };
      const one = await losses(1, 1);
      assert.equal(one.train.length, 20);
      assert.ok(one.train[19]! < one.train[0]! - 0.3, `the job learns: loss ${one.train[0]} -> ${one.train[19]}`);
      for (const [workers, sp] of [
        [2, 2],
        [4, 2],
      ] as const) {
        const run = await losses(workers, sp);
        const worst = Math.max(...run.train.map((l, i) => Math.abs(l - one.train[i]!) / Math.abs(one.train[i]!)));
        assert.ok(worst < 1e-5, `${workers} workers, SP ${sp}: max relative loss difference ${worst.toExponential(2)}`);
        assert.equal(run.val.length, 1);
        assert.ok(Math.abs(run.val[0]! - one.val[0]!) <= 1e-5 * one.val[0]!, `val ${run.val[0]} vs ${one.val[0]}`);
        t.diagnostic(`${workers} workers, SP ${sp}: max relative loss difference ${worst.toExponential(2)}`);
      }
    } finally {
      await cluster.stop();
    }
  },
);
