// Every refusal of the job API through JSON, as a client that is not ringtune's sees it: bad JSON,
// unknown keys, wrong types, spec problems (each naming its key), unknown job ids, unserved versions and
// encodings. Each reply is `{ ok: false, error: {code, message, key}, errors: [...] }` in JSON, and every
// reply validates against its JSON Schema in proto/schema/.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import { decode as decodeMsgpack, encode as encodeMsgpack } from "@msgpack/msgpack";
import { Kvm } from "@nats-io/kv";
import { JOBS_BUCKET, jobSubjects } from "../../proto/mod.js";
import { TestCluster, trainingFixture } from "../helpers/cluster.js";
import { rawRequest, type ApiErrorJson, type RawReply } from "../helpers/json_requests.js";
import { REPO_ROOT } from "../helpers/processes.js";

let cluster: TestCluster;
let dir: string;
let baseSpec: Record<string, unknown>;
const replySchemas = new Map<string, ValidateFunction>();

before(async () => {
  ({ dir, baseSpec } = trainingFixture());
  cluster = await TestCluster.start(0);
  const ajv = new Ajv2020({ strict: false });
  for (const [subject, file] of [
    [jobSubjects.submit, "job_submit_reply.json"],
    [jobSubjects.get, "job_get_reply.json"],
    [jobSubjects.list, "job_list_reply.json"],
    [jobSubjects.cancel, "job_cancel_reply.json"],
  ] as const) {
    const doc = JSON.parse(readFileSync(path.join(REPO_ROOT, "proto/schema", file), "utf8")) as object;
    replySchemas.set(subject, ajv.compile(doc));
  }
});

after(async () => {
  await cluster?.stop();
});

/** A JSON request; asserts the reply is JSON, says so in its header and matches its JSON Schema. */
async function ask(subject: string, body: unknown, contentType?: string): Promise<RawReply["json"]> {
  const reply = await rawRequest(cluster.client, subject, body, contentType);
  assert.equal(reply.contentType, "application/json");
  const valid = replySchemas.get(subject)!;
  assert.equal(valid(reply.json), true, `${subject} reply against its JSON Schema: ${JSON.stringify(valid.errors)}`);
  return reply.json;
}

/** Asserts a refusal whose problems are exactly `want` (code and key), in order; returns them. */
async function refused(subject: string, body: unknown, want: [string, string | null][]): Promise<ApiErrorJson[]> {
  const reply = await ask(subject, body);
  assert.equal(reply.ok, false, JSON.stringify(reply));
  assert.deepEqual(reply.error, reply.errors?.[0], "error is the first of errors");
  assert.deepEqual(
    reply.errors!.map((e) => [e.code, e.key]),
    want,
    JSON.stringify(reply.errors),
  );
  return reply.errors!;
}

test("bad JSON and a body that is not an object are refused as bad_json, naming no key", async () => {
  const [notJson] = await refused(jobSubjects.submit, "{spec: nope", [["bad_json", null]]);
  assert.match(notJson!.message, /not UTF-8 JSON/);
  await refused(jobSubjects.submit, "[1, 2]", [["bad_json", null]]);
  await refused(jobSubjects.get, "null", [["bad_json", null]]);
  await refused(jobSubjects.submit, new Uint8Array([0x7b, 0xff, 0x7d]), [["bad_json", null]]);
});

test("msgpack bytes without a Content-Type header are not guessed at: they are bad JSON", async () => {
  await refused(jobSubjects.get, encodeMsgpack({ id: "job-x" }), [["bad_json", null]]);
});

test("an unknown request key and a wrong type are refused naming the key", async () => {
  await refused(jobSubjects.submit, { spec: baseSpec, base_dir: dir, priority: 3 }, [["unknown_key", "priority"]]);
  await refused(jobSubjects.submit, { spec: "job.yaml", base_dir: dir }, [["wrong_type", "spec"]]);
  await refused(jobSubjects.submit, { spec: baseSpec, base_dir: 7 }, [["wrong_type", "base_dir"]]);
  await refused(jobSubjects.get, {}, [["wrong_type", "id"]]);
  await refused(jobSubjects.list, { status: ["sleeping"] }, [["invalid_value", "status[0]"]]);
  await refused(jobSubjects.cancel, { id: "a.b" }, [["invalid_value", "id"]]);
});

test("spec problems are refused one per key, with the messages the CLI prints", async () => {
  const errors = await refused(
    jobSubjects.submit,
    { spec: { ...baseSpec, learning_rate: 1e-3, workers: "two" }, base_dir: dir, source: "job.yaml" },
    [
      ["invalid_spec", "workers"],
      ["invalid_spec", "learning_rate"],
    ],
  );
  assert.match(errors[0]!.message, /^job\.yaml: workers: .*expected number/i);
  assert.equal(errors[1]!.message, "job.yaml: (top level): unknown key 'learning_rate'");
  const [missing] = await refused(
    jobSubjects.submit,
    { spec: { ...baseSpec, data: [{ path: "nope.jsonl" }] }, base_dir: dir },
    [["missing_file", "data[0].path"]],
  );
  assert.match(missing!.message, /data\[0\]\.path: no such file or folder .*nope\.jsonl/);
});

test("without base_dir, relative paths and a missing output are refused naming each key", async () => {
  const errors = await refused(jobSubjects.submit, { spec: baseSpec }, [
    ["invalid_spec", "model.init.config"],
    ["invalid_spec", "data[0].path"],
    ["invalid_spec", "cache_dir"],
    ["invalid_spec", "output"],
  ]);
  assert.match(errors[0]!.message, /'model\.json' is relative and the request has no base_dir/);
});

test("an unserved major version is refused with the versions served; no version or v 1.x is current", async () => {
  const [unserved] = await refused(jobSubjects.list, { v: 2 }, [["unsupported_version", "v"]]);
  assert.deepEqual(unserved!.versions, [1]);
  assert.match(unserved!.message, /serves version\(s\) 1/);
  await refused(jobSubjects.list, { v: "7.0" }, [["unsupported_version", "v"]]);
  await refused(jobSubjects.list, { v: "latest" }, [["wrong_type", "v"]]);
  for (const body of [{}, { v: 1 }, { v: "1.3" }, ""]) assert.equal((await ask(jobSubjects.list, body)).ok, true);
});

test("unknown job ids are refused as not_found on get and cancel", async () => {
  const [get] = await refused(jobSubjects.get, { id: "job-nope" }, [["not_found", "id"]]);
  assert.equal(get!.message, "no job 'job-nope'");
  await refused(jobSubjects.cancel, { id: "job-nope" }, [["not_found", "id"]]);
});

test("a Content-Type the API does not speak is refused in JSON", async () => {
  const reply = await rawRequest(cluster.client, jobSubjects.list, "{}", "text/plain");
  assert.equal(reply.contentType, "application/json");
  assert.equal(reply.json.error?.code, "unsupported_encoding");
});

test("a JSON job is accepted, readable by get, list and in KV as JSON, canceled once, then refused", async () => {
  const spec = {
    ...baseSpec,
    model: { init: { config: path.join(dir, "model.json"), seed: 3 } },
    data: [{ path: path.join(dir, "train.jsonl") }],
    cache_dir: path.join(dir, "cache"),
    output: path.join(dir, "out-json"),
    workers: 2,
  };
  const submitted = await ask(jobSubjects.submit, { spec });
  assert.equal(submitted.ok, true, JSON.stringify(submitted));
  const id = submitted.id as string;
  const got = await ask(jobSubjects.get, { id });
  assert.equal((got.job as { id: string; output: string }).output, path.join(dir, "out-json"));
  const listed = await ask(jobSubjects.list, { status: ["queued", "waiting"] });
  assert.deepEqual(
    (listed.jobs as { id: string }[]).map((j) => j.id),
    [id],
  );
  const entry = await (await new Kvm(cluster.client).open(JOBS_BUCKET)).get(id);
  const stored = JSON.parse(new TextDecoder().decode(entry!.value)) as { id: string; v: number; spec: unknown };
  assert.equal(stored.id, id);
  assert.equal(stored.v, 1);
  assert.deepEqual(stored.spec, spec);
  assert.equal((await ask(jobSubjects.cancel, { id })).ok, true);
  const [final] = await refused(jobSubjects.cancel, { id }, [["job_final", "id"]]);
  assert.equal(final!.message, `job ${id} is already canceled`);
  assert.deepEqual(((await ask(jobSubjects.list, { status: ["queued", "waiting"] })).jobs as unknown[]).length, 0);
});

test("a msgpack request with its Content-Type header gets a msgpack reply saying so", async () => {
  const reply = await rawRequest(
    cluster.client,
    jobSubjects.get,
    encodeMsgpack({ id: "job-nope" }),
    "application/msgpack",
  );
  assert.equal(reply.contentType, "application/msgpack");
  const body = decodeMsgpack(reply.bytes) as { ok: boolean; error: ApiErrorJson; v: number };
  assert.deepEqual([body.ok, body.error.code, body.error.key, body.v], [false, "not_found", "id", 1]);
});
