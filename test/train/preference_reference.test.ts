// Full and hybrid preference jobs compare with the initial model's log-probabilities, computed once by the
// ring before step 1 and stored in the data cache (real nats-server, coordinator and workers). The stored
// reference is the base a LoRA job switches its adapters off to, for the rows each step trains on; a job on
// 1 and on 2 workers (each computing its own reference) trains to the same losses; a resume reads the
// stored reference (it neither recomputes nor rewrites it) and continues with the same losses, and one
// that finds no stored reference computes it from the initial weights, not the checkpoint's; a cancel
// stops the pass.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { readMetrics, TestCluster } from "../helpers/cluster.js";
import { readReference } from "../../data/preference/reference_store.js";
import { HeldFolder } from "../../files/held_folder.js";
import { DataOrder } from "../../spec/step_plan.js";
import { pairsFixture, type PrefLine } from "./preference_fixture.js";

const lines = (out: string) => readMetrics(out) as PrefLine[];
const steps = (out: string) => lines(out).filter((m) => m.loss !== undefined);
const referenceEvents = (out: string) => lines(out).filter((m) => m.event === "reference_logps");

function maxRelativeDiff(a: number[], b: number[]): number {
  assert.equal(a.length, b.length);
  return Math.max(...a.map((x, i) => Math.abs(x - b[i]!) / Math.abs(x)));
}

/** The one reference file under a cache folder (one data entry, one model). */
function referenceFileIn(cache: string): string {
  const found = readdirSync(cache, { recursive: true, encoding: "utf8" }).filter((f) =>
    /reference-[0-9a-f]+\.bin$/.test(f),
  );
  assert.equal(found.length, 1, `one reference file in ${cache}: ${found.join(", ")}`);
  return path.join(cache, found[0]!);
}

function readStored(file: string, trainRows: number, valRows: number) {
  const entry = HeldFolder.open(path.dirname(file));
  const ref = readReference(entry, path.basename(file), trainRows, valRows);
  entry.close();
  assert.ok(ref, `${file} holds a reference of ${trainRows} + ${valRows} rows`);
  return ref;
}

test(
  "full DPO: the reference is computed once before step 1 and stored; it is the LoRA base's; 1 and 2 workers " +
    "train alike; a resume reuses it, and without it recomputes it from the initial weights",
  { timeout: 300_000 },
  async (t) => {
    const { dir, spec: loraSpec } = pairsFixture();
    const { lora: _lora, ...rest } = loraSpec;
    // 24 pairs, 4 of them held out; packed rows of two or three pairs, one row per micro-batch
    const spec = {
      ...rest,
      method: "full",
      val_size: 4,
      packing: true,
      seq_len: 256,
      global_batch_rows: 2,
      micro_batch_rows: 1,
      lr: 3e-3,
      eval_every: 3,
      seed: 5,
    };
    const cluster = await TestCluster.start(2);
    try {
      const one = await cluster.run({ ...spec, workers: 1, save_every: 3, output: "one" }, dir);
      const a = steps(one.output);
      assert.equal(a.length, 6);
      assert.deepEqual(
        referenceEvents(one.output).map((e) => [e.step, e.from_cache, e.pairs]),
        [[0, false, 24]],
      );
      // At step 1 the policy is the initial model, whose log-probabilities the reference holds.
      assert.ok(Math.abs(a[0]!.loss! - Math.LN2) < 1e-6, `first step's loss ${a[0]!.loss} is ln 2`);
      assert.ok(Math.abs(a[0]!.margin!) < 1e-6, `policy = reference: margin ${a[0]!.margin}`);
      assert.ok(a[5]!.loss! < a[0]!.loss!, `full DPO lowers its loss: ${a[0]!.loss} -> ${a[5]!.loss}`);
      assert.ok(a[5]!.margin! > 0, `the chosen answers pull ahead: margin ${a[5]!.margin}`);
      const evals = lines(one.output).filter((m) => m.val_loss !== undefined);
      assert.equal(evals.length, 2);
      assert.ok(Math.abs(evals[0]!.val_loss! - Math.LN2) > 1e-9 && Number.isFinite(evals[0]!.val_loss!));

      // The stored reference against a LoRA job's base (adapters off; B = 0, so its policy too) on the
      // rows of step 1: the mean of the stored log-probabilities of those rows' pairs.
      const cache = path.join(dir, "cache");
      const file = referenceFileIn(cache);
      const ref = readStored(file, countRows(file).train, countRows(file).val);
      const lora = await cluster.run(
        {
          ...spec,
          method: "lora",
          lora: { rank: 4, alpha: 8, base_precision: "fp32" },
          workers: 1,
          max_steps: 1,
          output: "lora",
        },
        dir,
      );
      const l = steps(lora.output)[0]!;
      assert.ok(Math.abs(l.loss! - Math.LN2) < 1e-12);
      const firstRows = new DataOrder(ref.train.rows, spec.seed).rowsOfStep(1, spec.global_batch_rows);
      const stored = ref.train.ofRows(firstRows);
      const mean = (side: number) =>
        stored.filter((_, i) => i % 2 === side).reduce((s, x) => s + x, 0) / (stored.length / 2);
      assert.equal(stored.length / 2, l.pairs);
      for (const [side, key] of [
        [0, "logps_chosen"],
        [1, "logps_rejected"],
      ] as const) {
        const d = Math.abs(mean(side) - l[key]!) / Math.abs(l[key]!);
        t.diagnostic(`stored reference vs LoRA adapters-off base, ${key}: relative diff ${d.toExponential(2)}`);
        assert.ok(d < 1e-6, `${key}: stored ${mean(side)} vs LoRA base ${l[key]}`);
      }

      // 2 workers, each computing its share of a reference of their own (another cache folder)
      const two = await cluster.run({ ...spec, workers: 2, cache_dir: "cache2", output: "two" }, dir);
      assert.deepEqual(
        referenceEvents(two.output).map((e) => e.from_cache),
        [false],
      );
      const ref2 = readStored(referenceFileIn(path.join(dir, "cache2")), ref.train.rows, ref.val.rows);
      assert.deepEqual(Array.from(ref2.train.starts), Array.from(ref.train.starts));
      const refDiff = maxRelativeDiff(Array.from(ref.train.logps), Array.from(ref2.train.logps));
      t.diagnostic(`reference on 2 workers vs 1: max relative diff ${refDiff.toExponential(2)}`);
      assert.ok(refDiff < 1e-5);
      const losses = a.map((m) => m.loss!);
      const twoDiff = maxRelativeDiff(
        losses,
        steps(two.output).map((m) => m.loss!),
      );
      t.diagnostic(`full DPO on 2 workers vs 1: max relative loss diff ${twoDiff.toExponential(2)}`);
      assert.ok(twoDiff < 1e-5, `2 workers: max relative loss difference ${twoDiff}`);

      // A resume reads the stored reference: no pass, the file untouched, the same losses.
      const checkpoint = path.join(one.output, "checkpoints", "step-000003");
      const before = statSync(file).mtimeMs;
      const resumed = await cluster.run({ ...spec, workers: 2, output: "resumed", resume_from: checkpoint }, dir);
      assert.deepEqual(
        referenceEvents(resumed.output).map((e) => [e.step, e.from_cache]),
        [[3, true]],
      );
      assert.equal(statSync(file).mtimeMs, before, "the stored reference is not written again");
      const r = steps(resumed.output);
      assert.deepEqual(
        r.map((m) => m.step),
        [4, 5, 6],
      );
      const resumeDiff = maxRelativeDiff(
        losses.slice(3),
        r.map((m) => m.loss!),
      );
      t.diagnostic(`resumed with the stored reference: max relative loss diff ${resumeDiff.toExponential(2)}`);
      assert.ok(resumeDiff < 1e-5, `resumed: ${resumeDiff}`);

      // A resume that finds no stored reference (a cache folder of its own) computes it from the initial
      // weights before it loads the checkpoint's: the same losses again.
      const fresh = await cluster.run(
        { ...spec, workers: 1, cache_dir: "cache3", output: "fresh", resume_from: checkpoint },
        dir,
      );
      assert.deepEqual(
        referenceEvents(fresh.output).map((e) => [e.step, e.from_cache]),
        [[3, false]],
      );
      const freshDiff = maxRelativeDiff(
        losses.slice(3),
        steps(fresh.output).map((m) => m.loss!),
      );
      t.diagnostic(`resumed without a stored reference: max relative loss diff ${freshDiff.toExponential(2)}`);
      assert.ok(freshDiff < 1e-5, `resumed, reference recomputed: ${freshDiff}`);

      // Hybrid: the same stored reference (same data, same initial model) through the switch to LoRA.
      const hybrid = await cluster.run(
        { ...spec, method: "hybrid", full_fraction: 0.5, lora: { rank: 4, alpha: 8 }, workers: 1, output: "hybrid" },
        dir,
      );
      assert.deepEqual(
        referenceEvents(hybrid.output).map((e) => e.from_cache),
        [true],
      );
      const h = steps(hybrid.output);
      assert.ok(Math.abs(h[0]!.loss! - Math.LN2) < 1e-6);
      assert.ok(lines(hybrid.output).some((m) => m.event === "switch_to_lora"));
      assert.ok(h[5]!.loss! < h[0]!.loss!, `hybrid DPO lowers its loss: ${h[0]!.loss} -> ${h[5]!.loss}`);
    } finally {
      await cluster.stop();
    }
  },
);

/** The row counts a reference file was written for (its header). */
function countRows(file: string): { train: number; val: number } {
  const words = new Float64Array(Uint8Array.from(readFileSync(file).subarray(0, 24)).buffer);
  return { train: words[1]!, val: words[2]! };
}

test("a cancel stops the reference pass", { timeout: 120_000 }, async () => {
  const { dir, spec: loraSpec } = pairsFixture();
  const { lora: _lora, ...rest } = loraSpec;
  // 1500 pairs, one a step: the pass takes 1500 round trips to the worker
  const pairs = Array.from({ length: 1500 }, (_, i) =>
    JSON.stringify({
      prompt: [{ role: "user", content: `Item ${i}?` }],
      chosen: [{ role: "assistant", content: `{"n":${i}}` }],
      rejected: [{ role: "assistant", content: `n is ${i}` }],
    }),
  );
  writeFileSync(path.join(dir, "many.jsonl"), pairs.join("\n") + "\n");
  const cluster = await TestCluster.start(1);
  try {
    const reply = await cluster.submit(
      {
        ...rest,
        method: "full",
        data: [{ path: "many.jsonl" }],
        global_batch_rows: 1,
        micro_batch_rows: 1,
        output: "c",
      },
      dir,
    );
    assert.ok(reply.ok, reply.error);
    await cluster.waitFor(
      async () =>
        /reference log-probabilities of the initial model/.test((await cluster.record(reply.id!))?.message ?? ""),
      "the reference pass to show its progress",
    );
    await cluster.cancel(reply.id!);
    const rec = await cluster.finished(reply.id!, 60_000);
    assert.equal(rec.status, "canceled", rec.message);
    assert.equal(steps(rec.output).length, 0, "no step ran");
    const stored = readdirSync(path.join(dir, "cache"), { recursive: true, encoding: "utf8" }).filter((f) =>
      f.includes("reference-"),
    );
    assert.deepEqual(stored, [], "a cancelled pass stores nothing");
  } finally {
    await cluster.stop();
  }
});
