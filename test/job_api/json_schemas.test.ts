// The JSON Schema documents in proto/schema/: current with the zod schemas they are generated from, and
// usable by a stock validator (ajv) to accept the example job specs and reject broken ones as zod does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { parse as parseYaml } from "yaml";
import { jsonSchemaFiles, SCHEMA_DIR } from "../../coordinator/jobs/json_schemas.js";
import { jobSpecSchema } from "../../spec/job_spec.js";
import { REPO_ROOT } from "../helpers/processes.js";

const schemaDir = path.join(REPO_ROOT, SCHEMA_DIR);
const EXAMPLE_SPECS = ["examples/sft_byte.yaml", "examples/demo/job.yaml", "examples/sft_bpe_model_template.yaml"];

function validator(file: string) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  return ajv.compile(JSON.parse(readFileSync(path.join(schemaDir, file), "utf8")) as object);
}

const example = (file: string) =>
  parseYaml(readFileSync(path.join(REPO_ROOT, file), "utf8")) as Record<string, unknown>;

test("proto/schema/ holds exactly the documents the zod schemas generate ('make schema' rewrites them)", () => {
  const want = jsonSchemaFiles();
  const have = readdirSync(schemaDir).filter((f) => f.endsWith(".json"));
  assert.deepEqual(have.sort(), [...want.keys()].sort(), `run 'make schema': the files in ${SCHEMA_DIR} are stale`);
  for (const [file, text] of want) {
    assert.equal(readFileSync(path.join(schemaDir, file), "utf8"), text, `run 'make schema': ${file} is stale`);
  }
});

test("job_spec.json accepts every example job spec, as the zod schema does", () => {
  const valid = validator("job_spec.json");
  for (const file of EXAMPLE_SPECS) {
    const spec = example(file);
    assert.equal(jobSpecSchema.safeParse(spec).success, true, `${file} is a valid spec for zod`);
    assert.equal(valid(spec), true, `${file}: ${JSON.stringify(valid.errors)}`);
  }
});

test("job_spec.json rejects a broken spec: an unknown key, a wrong type, a missing key, a bad enum", () => {
  const valid = validator("job_spec.json");
  const base = example("examples/demo/job.yaml");
  const broken: [string, Record<string, unknown>, RegExp][] = [
    ["unknown key", { ...base, learning_rate: 1e-3 }, /additional/],
    ["wrong type", { ...base, seq_len: "long" }, /\/seq_len/],
    ["missing model", (({ model: _m, ...rest }) => rest)(base), /model/],
    ["bad enum", { ...base, schedule: "exponential" }, /\/schedule/],
  ];
  for (const [what, spec, reason] of broken) {
    assert.equal(jobSpecSchema.safeParse(spec).success, false, `${what}: zod refuses it`);
    assert.equal(valid(spec), false, `${what}: the JSON Schema refuses it`);
    assert.match(JSON.stringify(valid.errors), reason, what);
  }
});

test("job_submit.json takes a spec with or without base_dir and v, and nothing else", () => {
  const valid = validator("job_submit.json");
  const spec = example("examples/demo/job.yaml");
  assert.equal(valid({ spec }), true, JSON.stringify(valid.errors));
  assert.equal(valid({ spec, base_dir: "/srv/jobs", v: 1 }), true, JSON.stringify(valid.errors));
  assert.equal(valid({ spec, priority: 3 }), false, "an unknown request key");
  assert.equal(valid({ spec: { ...spec, epochs: "two" } }), false, "a broken spec inside the request");
  assert.equal(valid({}), false, "no spec");
});
