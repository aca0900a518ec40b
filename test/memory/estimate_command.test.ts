// `ringtune estimate` and `ringtune data check` print a job's memory per rank, as people read it and as
// JSON; the numbers follow the spec (LoRA needs less than full training of the same model).
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { stringify } from "yaml";
import { trainingFixture } from "../helpers/cluster.js";
import { runCli } from "../helpers/run_cli.js";

interface EstimateJson {
  method: string;
  total: number;
  params: number;
  grads: number;
  optimizer: number;
  activations: number;
}

function jobFile(): string {
  const { dir, baseSpec } = trainingFixture();
  const file = path.join(dir, "job.yaml");
  writeFileSync(file, stringify(baseSpec));
  return file;
}

test(
  "ringtune estimate prints the need per rank and its parts; --json gives the bytes",
  { timeout: 120_000 },
  async () => {
    const file = jobFile();
    const text = await runCli(["estimate", "--spec", file]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^memory per rank: \d+\.\d [KMG]iB\n/);
    assert.match(text.stdout, /grads \d+\.\d [KMG]iB, AdamW moments \d+\.\d [KMG]iB/);
    assert.match(text.stdout, /activations .*: layers .*, head .*, attention tiles/);

    const full = await runCli(["estimate", "--spec", file, "--json"]);
    const lora = await runCli(["estimate", "--spec", file, "--json", "--set", "method=lora", "--set", "lora.rank=2"]);
    const f = JSON.parse(full.stdout) as EstimateJson;
    const l = JSON.parse(lora.stdout) as EstimateJson;
    assert.equal(f.total, f.params + f.grads + f.optimizer + f.activations);
    assert.equal(l.method, "lora");
    assert.ok(l.grads < f.grads / 10, `LoRA trains only adapters: grads ${l.grads} vs ${f.grads}`);
    assert.ok(l.total < f.total);

    const bad = await runCli(["estimate", "--spec", file, "--set", "model.init.config=missing.json"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /missing\.json: cannot read the model config/);
  },
);

test("ringtune data check ends with the job's memory per rank", { timeout: 120_000 }, async () => {
  const r = await runCli(["data", "check", "--spec", jobFile(), "--no-cache"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /records read[^]*\nmemory per rank: \d+\.\d [KMG]iB\n {2}params /);
});
