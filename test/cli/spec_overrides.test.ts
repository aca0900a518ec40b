// `ringtune submit JOB.yaml --set KEY=VALUE`: one run's changes to a job file, checked like the file.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { UsageError } from "../../cli/args.js";
import { prepareJob } from "../../cli/job_client.js";
import { applySpecOverrides } from "../../cli/spec_overrides.js";

test("--set values are YAML: numbers stay numbers, dotted keys reach nested mappings, the input is not changed", () => {
  const spec = { max_steps: 1000, generation_eval: { path: "h.jsonl", max_new_tokens: 64 }, output: "runs/x" };
  const out = applySpecOverrides(spec, [
    "max_steps=20",
    "generation_eval.max_new_tokens=8",
    "output=/tmp/o",
    "betas=[0.9, 0.95]",
    "lora.rank=4",
  ]);
  assert.deepEqual(out, {
    max_steps: 20,
    generation_eval: { path: "h.jsonl", max_new_tokens: 8 },
    output: "/tmp/o",
    betas: [0.9, 0.95],
    lora: { rank: 4 },
  });
  assert.equal(spec.max_steps, 1000);
  assert.equal(spec.generation_eval.max_new_tokens, 64);
});

test("--set without KEY=VALUE, with an empty key or through a scalar is a usage error naming it", () => {
  assert.throws(
    () => applySpecOverrides({}, ["max_steps"]),
    (e: Error) => e instanceof UsageError && /KEY=VALUE/.test(e.message),
  );
  assert.throws(() => applySpecOverrides({}, ["a..b=1"]), /empty key in 'a\.\.b'/);
  assert.throws(() => applySpecOverrides({ lr: 0.1 }, ["lr.x=1"]), /'lr' is not a mapping/);
});

test("a job changed with --set is validated like the file: an unknown key is refused by name", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "ringtune-set-"));
  const file = path.join(dir, "job.yaml");
  writeFileSync(file, "model: {init: {config: model.json}}\ndata:\n  - {path: train.jsonl}\nmax_steps: 5\n");
  const job = prepareJob(file, ["max_steps=7"]);
  assert.equal(job.spec.max_steps, 7);
  assert.equal(job.base_dir, dir, "relative paths still resolve against the job file's folder");
  assert.throws(() => prepareJob(file, ["max_stepz=7"]), /max_stepz/);
});
