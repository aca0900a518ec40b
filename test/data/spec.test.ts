// The job spec: defaults, unknown keys named, YAML and JSON.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { formatSpecIssues, loadSpec, parseSpec } from "../../spec/load.js";
import { jobSpecSchema } from "../../spec/job_spec.js";

const minimal = { model: { path: "m" }, data: [{ path: "a.jsonl" }] };

test("a minimal spec gets the documented defaults and paths resolved against the spec's folder", () => {
  const s = parseSpec(minimal, "job.yaml", "/jobs");
  assert.equal(s.template, "chatml");
  assert.equal(s.seq_len, 512);
  assert.equal(s.packing, true);
  assert.equal(s.on_bad_record, "skip");
  assert.equal(s.data[0].format, "auto");
  assert.equal(s.data[0].path, "/jobs/a.jsonl");
  assert.equal(s.model.path, "/jobs/m");
});

test("unknown keys are errors that name the key, at the top and inside data entries", () => {
  assert.throws(() => parseSpec({ ...minimal, seqlen: 5 }, "job.yaml", "/"), /\(top level\): unknown key 'seqlen'/);
  assert.throws(
    () => parseSpec({ ...minimal, data: [{ path: "a", wieght: 1 }] }, "job.yaml", "/"),
    /data\[0\]: unknown key 'wieght'/,
  );
  assert.throws(
    () => parseSpec({ ...minimal, model: { path: "m", init: { config: "c" } } }, "job.yaml", "/"),
    /model: give exactly one of 'path' or 'init'/,
  );
  assert.throws(() => parseSpec({ ...minimal, template: "alpaca" }, "job.yaml", "/"), /template: /);
});

test("a full example job file parses, from YAML and from JSON", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ringtune-spec-"));
  const yaml = `model: {path: DIR}
tokenizer: byte
template: chatml
data:
  - {path: data/a.jsonl, format: auto, weight: 0.75}
  - {path: data/b.jsonl, weight: 0.25}
val_size: 0.1
seq_len: 512
packing: true
train_on_prompt: false
last_turn_only: false
on_bad_record: skip
seed: 0
`;
  writeFileSync(path.join(dir, "job.yaml"), yaml);
  const s = loadSpec(path.join(dir, "job.yaml"));
  assert.equal(s.data[1].weight, 0.25);
  assert.equal(s.tokenizer, "byte");
  writeFileSync(path.join(dir, "job.json"), JSON.stringify(minimal));
  assert.equal(loadSpec(path.join(dir, "job.json")).data.length, 1);
});

test("training keys are part of the one job schema, which stays strict and checks keys against each other", () => {
  const ok = jobSpecSchema.parse({
    ...minimal,
    lr: 3e-4,
    max_steps: 20,
    warmup_ratio: 0.1,
    workers: 2,
    betas: [0.9, 0.95],
  });
  assert.equal(ok.lr, 3e-4);
  assert.equal(ok.schedule, "cosine");
  assert.deepEqual(ok.betas, [0.9, 0.95]);
  const unknown = jobSpecSchema.safeParse({ ...minimal, lr: 1e-4, nope: 1 });
  assert.equal(unknown.success, false);
  assert.match(formatSpecIssues(unknown.error!.issues).join("\n"), /unknown key 'nope'/);
  const both = jobSpecSchema.safeParse({ ...minimal, warmup_ratio: 0.1, warmup_steps: 3 });
  assert.match(
    formatSpecIssues(both.error!.issues).join("\n"),
    /warmup_steps: give warmup_ratio or warmup_steps, not both/,
  );
  const minlr = jobSpecSchema.safeParse({ ...minimal, lr: 1e-4, min_lr: 1e-3 });
  assert.match(formatSpecIssues(minlr.error!.issues).join("\n"), /min_lr: min_lr \(0.001\) exceeds lr \(0.0001\)/);
});
