// Preference jobs on the cluster (real nats-server, coordinator and workers): with LoRA's B = 0 the first
// sigmoid-DPO step's loss is ln 2; the losses are the same on 1 and 2 workers and with micro-batches of 1
// and 4 pairs; a job resumed from its checkpoint continues with the same losses; training raises the share
// of pairs whose chosen answer is ahead; ORPO trains every weight without a reference.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { readMetrics, TestCluster } from "../helpers/cluster.js";
import { pairsFixture, type PrefLine } from "./preference_fixture.js";
import { CoordinatorMetrics } from "../../coordinator/observe/coordinator_metrics.js";

const steps = (out: string) => readMetrics(out).filter((m) => m.loss !== undefined) as PrefLine[];

function maxRelativeDiff(a: number[], b: number[]): number {
  assert.equal(a.length, b.length);
  return Math.max(...a.map((x, i) => Math.abs(x - b[i]!) / Math.abs(x)));
}

test(
  "a LoRA DPO job: ln 2 at B = 0, the same losses on 1 and 2 workers and with micro-batches of 1 and 4 pairs, " +
    "and a resume from its checkpoint continues with the same losses",
  { timeout: 300_000 },
  async (t) => {
    const { dir, spec } = pairsFixture();
    const cluster = await TestCluster.start(2);
    try {
      const one = await cluster.run({ ...spec, workers: 1, save_every: 3, output: "one" }, dir);
      const a = steps(one.output);
      assert.equal(a.length, 6);
      assert.ok(Math.abs(a[0]!.loss! - Math.LN2) < 1e-12, `first step's loss ${a[0]!.loss} is ln 2`);
      assert.equal(a[0]!.margin, 0, "policy = reference: zero margin");
      assert.equal(a[0]!.pairs, 4);
      assert.equal(a[0]!.targets, 4, "the loss is averaged over the step's pairs");
      assert.ok(a[5]!.loss! < a[0]!.loss!, `DPO lowers its loss: ${a[0]!.loss} -> ${a[5]!.loss}`);
      assert.ok(a[5]!.margin! > 0 && a[5]!.rewards_chosen! > a[5]!.rewards_rejected!);
      for (const k of ["accuracy", "logps_chosen", "logps_rejected", "rewards_chosen", "rewards_rejected"] as const)
        assert.equal(typeof a[5]![k], "number", k);
      const tasks = a.flatMap((m) => Object.keys(m.pref_by_task ?? {}));
      assert.deepEqual([...new Set(tasks)].sort(), ["extract/age", "extract/name"]);
      assert.ok(Object.keys(a[0]!.loss_by_task!).length > 0);
      // loss.png's SVG draws the preference row; /metrics carries the same numbers per task
      const svg = readFileSync(path.join(one.output, "loss.svg"), "utf8");
      assert.match(svg, /preference rewards/);
      assert.match(svg, /preference accuracy/);
      assert.match(svg, /accuracy extract\/age/, "loss.png draws each task_type's accuracy");
      const metrics = new CoordinatorMetrics({ jobs: () => [], workers: () => [] });
      for (const line of readMetrics(one.output))
        metrics.observe("j", line as unknown as Parameters<CoordinatorMetrics["observe"]>[1]);
      const scrape = await metrics.registry.getSingleMetricAsString("ringtune_preference");
      assert.match(scrape, new RegExp(`ringtune_preference\\{job="j",task="all",metric="margin"\\} ${a[5]!.margin}`));
      assert.match(scrape, /ringtune_preference\{job="j",task="extract\/age",metric="accuracy"\} /);

      const losses = a.map((m) => m.loss!);
      for (const keys of [
        { workers: 2, micro_batch_rows: 4 },
        { workers: 1, micro_batch_rows: 1 },
      ]) {
        const rec = await cluster.run({ ...spec, ...keys, output: `w${keys.workers}-mb${keys.micro_batch_rows}` }, dir);
        const diff = maxRelativeDiff(
          losses,
          steps(rec.output).map((m) => m.loss!),
        );
        t.diagnostic(`${JSON.stringify(keys)}: max relative loss diff ${diff.toExponential(2)}`);
        assert.ok(diff < 1e-5, `${JSON.stringify(keys)}: max relative loss difference ${diff}`);
      }

      const resumed = await cluster.run(
        {
          ...spec,
          workers: 2,
          output: "resumed",
          resume_from: path.join(one.output, "checkpoints", "step-000003"),
        },
        dir,
      );
      const r = steps(resumed.output);
      assert.deepEqual(
        r.map((m) => m.step),
        [4, 5, 6],
      );
      const diff = maxRelativeDiff(
        losses.slice(3),
        r.map((m) => m.loss!),
      );
      t.diagnostic(`resumed at step 3: max relative loss diff ${diff.toExponential(2)}`);
      assert.ok(diff < 1e-5, `resumed: max relative loss difference ${diff}`);
    } finally {
      await cluster.stop();
    }
  },
);

test(
  "ORPO trains every weight without a reference model and puts the chosen answers ahead",
  { timeout: 180_000 },
  async () => {
    const { dir, spec } = pairsFixture();
    const cluster = await TestCluster.start(1);
    try {
      const { lora: _lora, ...full } = spec;
      const rec = await cluster.run(
        { ...full, method: "full", pref_loss: "orpo", pref_beta: 0.5, lr: 3e-3, max_steps: 8, output: "orpo" },
        dir,
      );
      const a = steps(rec.output);
      assert.equal(a.length, 8);
      assert.ok(a[7]!.loss! < a[0]!.loss!, `ORPO lowers its loss: ${a[0]!.loss} -> ${a[7]!.loss}`);
      assert.ok(a[7]!.margin! > a[0]!.margin!, `the margin grows: ${a[0]!.margin} -> ${a[7]!.margin}`);
    } finally {
      await cluster.stop();
    }
  },
);
