// LoRA and hybrid jobs on the cluster: 2 workers equal 1, the hybrid switch happens at the stated step
// without a jump in the loss, and the outputs are a PEFT adapter, its base and a merged model.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { readMetrics, TestCluster, trainingFixture } from "../helpers/cluster.js";

const lossCurve = (out: string) =>
  readMetrics(out)
    .filter((m) => m.loss !== undefined)
    .map((m) => m.loss!);

test("a LoRA job on 2 workers equals the same job on 1 worker", { timeout: 180_000 }, async (t) => {
  const { dir, baseSpec } = trainingFixture();
  const cluster = await TestCluster.start(2);
  try {
    const spec = { ...baseSpec, method: "lora", lora: { rank: 4, alpha: 8, targets: "all" }, lr: 1e-2, max_steps: 12 };
    const one = await cluster.run({ ...spec, workers: 1, output: "lora-1" }, dir);
    const two = await cluster.run({ ...spec, workers: 2, output: "lora-2" }, dir);
    const a = lossCurve(one.output);
    const b = lossCurve(two.output);
    assert.equal(a.length, 12);
    assert.ok(a[11]! < a[0]!, `LoRA training lowers the loss: ${a[0]} -> ${a[11]}`);
    const worst = Math.max(...a.map((l, i) => Math.abs(l - b[i]!) / l));
    assert.ok(worst < 1e-5, `max relative loss difference ${worst}`);
    t.diagnostic(`LoRA 2 workers vs 1: max relative loss diff ${worst.toExponential(2)}`);
    for (const out of ["base", "adapter", "merged"])
      assert.ok(existsSync(path.join(one.output, "final", out)), `final/${out}`);
    const cfg = JSON.parse(
      readFileSync(path.join(one.output, "final", "adapter", "adapter_config.json"), "utf8"),
    ) as Record<string, unknown>;
    assert.equal(cfg.peft_type, "LORA");
    assert.equal(cfg.r, 4);
    assert.equal(cfg.base_model_name_or_path, path.join(one.output, "final", "base"));
  } finally {
    await cluster.stop();
  }
});

test(
  "hybrid trains every weight for full_fraction of the steps, then LoRA, without a jump in the loss",
  { timeout: 180_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    const cluster = await TestCluster.start(2);
    try {
      const spec = { ...baseSpec, workers: 2, max_steps: 20, lr: 3e-3, schedule: "constant" };
      const full = await cluster.run({ ...spec, output: "full" }, dir);
      const hybrid = await cluster.run(
        { ...spec, method: "hybrid", full_fraction: 0.3, lora: { rank: 8, alpha: 16 }, output: "hybrid" },
        dir,
      );
      const events = readMetrics(hybrid.output).filter((m) => (m as { event?: string }).event === "switch_to_lora");
      assert.deepEqual(
        events.map((e) => e.step),
        [6],
        "the switch after step round(0.3 * 20) = 6",
      );
      const f = lossCurve(full.output);
      const h = lossCurve(hybrid.output);
      // Up to the switch the runs are the same job; at step 7 the adapters start at B = 0, so the model the
      // step sees is the full run's model after step 6: the same loss, no jump.
      for (let i = 0; i < 7; i++)
        assert.ok(Math.abs(f[i]! - h[i]!) <= 1e-6 * f[i]!, `step ${i + 1}: ${f[i]} vs ${h[i]}`);
      assert.ok(h[19]! < h[6]!, `LoRA continues to learn after the switch: ${h[6]} -> ${h[19]}`);
      for (const out of ["base", "adapter", "merged"])
        assert.ok(existsSync(path.join(hybrid.output, "final", out)), `final/${out}`);
    } finally {
      await cluster.stop();
    }
  },
);

test(
  "a hybrid job resumes from checkpoints before and after its switch with the same losses",
  { timeout: 180_000 },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    const cluster = await TestCluster.start(2);
    try {
      const spec = {
        ...baseSpec,
        workers: 2,
        max_steps: 12,
        save_every: 3,
        method: "hybrid",
        full_fraction: 0.3,
        lora: { rank: 4 },
      };
      const unbroken = await cluster.run({ ...spec, output: "unbroken" }, dir);
      const steps = (out: string) =>
        new Map(
          readMetrics(out)
            .filter((m) => m.loss !== undefined)
            .map((m) => [m.step, m.loss!]),
        );
      const want = steps(unbroken.output);
      for (const k of [3, 6]) {
        const ckpt = path.join(unbroken.output, "checkpoints", `step-00000${k}`);
        assert.equal(
          existsSync(path.join(ckpt, "adapter", "adapter_config.json")),
          k > 4,
          `step ${k}: adapter saved only after the switch`,
        );
        const resumed = await cluster.run({ ...spec, output: `resumed-${k}`, resume_from: ckpt }, dir);
        const got = steps(resumed.output);
        assert.deepEqual(
          [...got.keys()],
          Array.from({ length: 12 - k }, (_, i) => k + 1 + i),
        );
        for (const [s, l] of got)
          assert.ok(Math.abs(l - want.get(s)!) <= 1e-6 * l, `resumed at ${k}, step ${s}: ${l} vs ${want.get(s)}`);
      }
    } finally {
      await cluster.stop();
    }
  },
);

test("a LoRA job continues from a PEFT adapter on its base", { timeout: 180_000 }, async () => {
  const { dir, baseSpec } = trainingFixture();
  const cluster = await TestCluster.start(1);
  try {
    const spec = { ...baseSpec, workers: 1, method: "lora", lora: { rank: 4, alpha: 8 }, lr: 1e-2, max_steps: 12 };
    const first = await cluster.run({ ...spec, output: "first" }, dir);
    const final = path.join(first.output, "final");
    const second = await cluster.run(
      {
        ...spec,
        model: { path: path.join(final, "base"), adapter: path.join(final, "adapter") },
        max_steps: 3,
        output: "second",
      },
      dir,
    );
    const a = lossCurve(first.output);
    const b = lossCurve(second.output);
    assert.ok(
      b[0]! < (a[0]! + a[11]!) / 2,
      `the second job starts where the first ended: ${a[0]} -> ${a[11]}, then ${b[0]}`,
    );
    const refused = await cluster.submit(
      { ...baseSpec, model: { ...(baseSpec.model as object), adapter: "nowhere" } },
      dir,
    );
    assert.match(refused.error!, /model.adapter: continuing an adapter needs method: lora/);
  } finally {
    await cluster.stop();
  }
});
