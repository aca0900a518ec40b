// The hybrid method (every weight for full_fraction of the steps, then LoRA) under sequence parallelism: two
// workers holding halves of every row switch at the same step as one worker and follow its loss curve to
// the end, on both sides of the switch.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { readMetrics, TestCluster, trainingFixture } from "../helpers/cluster.js";

test(
  "a hybrid job with sequence_parallel 2 switches to LoRA at the same step and ends at one worker's losses",
  { timeout: 900_000 },
  async (t) => {
    const { dir, baseSpec } = trainingFixture();
    const cluster = await TestCluster.start(2);
    try {
      const spec = {
        ...baseSpec,
        method: "hybrid",
        full_fraction: 0.3,
        lora: { rank: 4, alpha: 8, targets: "all" },
        lr: 3e-3,
        schedule: "constant",
        max_steps: 16,
        eval_every: 16,
      };
      const run = async (workers: number, sp: number) => {
        const rec = await cluster.run({ ...spec, workers, sequence_parallel: sp, output: `hybrid-${workers}` }, dir);
        assert.equal(rec.step, 16);
        const m = readMetrics(rec.output);
        assert.ok(existsSync(path.join(rec.output, "final", "adapter")), `${workers} workers: final/adapter`);
        return {
          losses: m.filter((l) => l.loss !== undefined).map((l) => l.loss!),
          switches: m.filter((l) => (l as { event?: string }).event === "switch_to_lora").map((l) => l.step),
          val: m.filter((l) => l.val_loss !== undefined).map((l) => l.val_loss!),
        };
      };
      const one = await run(1, 1);
      const two = await run(2, 2);
      assert.deepEqual(one.switches, [5], "the switch after step round(0.3 * 16) = 5");
      assert.deepEqual(two.switches, one.switches, "SP 2 switches at the same step");
      assert.equal(one.losses.length, 16);
      assert.equal(two.losses.length, 16);
      assert.ok(one.losses[15]! < one.losses[0]!, `the job learns: ${one.losses[0]} -> ${one.losses[15]}`);
      const rel = two.losses.map((l, i) => Math.abs(l - one.losses[i]!) / Math.abs(one.losses[i]!));
      const before = Math.max(...rel.slice(0, 5));
      const after = Math.max(...rel.slice(5));
      assert.ok(before < 1e-5, `full-parameter steps: max relative loss difference ${before.toExponential(2)}`);
      assert.ok(after < 1e-5, `LoRA steps: max relative loss difference ${after.toExponential(2)}`);
      assert.equal(two.val.length, 1);
      assert.ok(Math.abs(two.val[0]! - one.val[0]!) <= 1e-5 * one.val[0]!, `val ${two.val[0]} vs ${one.val[0]}`);
      t.diagnostic(
        `max relative loss difference: ${before.toExponential(2)} before the switch, ${after.toExponential(2)} after`,
      );
    } finally {
      await cluster.stop();
    }
  },
);
