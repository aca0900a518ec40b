// Hostile job API messages against a cluster of real processes (a nats-server with the cluster's users, the
// coordinator and a worker as processes): oversized fields, oversized lists and records an older
// coordinator let in. Each is refused (or skipped) with a small reply, and the cluster still serves after it.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { encodeJobRecord, JOBS_BUCKET, jobSubjects, type JobRecordBody } from "../../proto/mod.js";
import { trainingFixture } from "../helpers/cluster.js";
import { hostileClusterForFile } from "../helpers/hostile_cluster.js";
import { rawRequest, type RawReply } from "../helpers/json_requests.js";

const MB = 1024 * 1024;
/** A refusal repeats a bounded share of what it was sent, whatever that was. */
const SMALL_REPLY = 64 * 1024;

const spec = (overrides: Record<string, unknown>) => ({ ...baseSpec, max_steps: 2, output: "out", ...overrides });

/**
 * A record as a coordinator without bounds would have accepted it: a 4.5 MB task_type, 4096 workers (two of
 * them make a list reply over the server's 8 MB max_payload).
 */
function poisonedRecord(id: string, created: string): JobRecordBody {
  return {
    id,
    status: "queued",
    spec: spec({ data: [{ path: "train.jsonl", task_type: "t".repeat(4.5 * MB) }], workers: 4096 }),
    base_dir: dir,
    created_at: created,
    updated_at: created,
    step: 0,
    total_steps: 0,
    train_loss: {},
    output: path.join(dir, "out"),
    workers: [],
  };
}

const cluster = hostileClusterForFile({
  beforeCoordinator: async (url, users) => {
    const nc = await connect({ servers: url, ...users.as("coordinator") });
    const kv = await new Kvm(nc).create(JOBS_BUCKET, { history: 1 });
    await kv.put("job-poisoned-a", encodeJobRecord(poisonedRecord("job-poisoned-a", "2020-01-01T00:00:00.000Z")));
    await kv.put("job-poisoned-b", encodeJobRecord(poisonedRecord("job-poisoned-b", "2020-01-02T00:00:00.000Z")));
    await nc.close();
  },
});
// beneath the cluster's root: a probe's job may write there, and nowhere else
const { dir, baseSpec } = trainingFixture(cluster.root);

async function ask(subject: string, body: unknown): Promise<RawReply> {
  return rawRequest(await cluster.open("client"), subject, body);
}

function assertRefused(reply: RawReply, code: string, key: string | null): void {
  assert.equal(reply.json.ok, false, JSON.stringify(reply.json).slice(0, 500));
  assert.ok(reply.bytes.length < SMALL_REPLY, `a ${reply.bytes.length}-byte refusal`);
  assert.equal(reply.json.error?.code, code, reply.json.error?.message);
  assert.equal(reply.json.error?.key, key, reply.json.error?.message);
}

test("a job.list whose v is a 5 MB string is refused in a small reply", async () => {
  const reply = await ask(jobSubjects.list, { v: "1".repeat(5 * MB) });
  assertRefused(reply, "wrong_type", "v");
  assert.match(reply.json.error!.message, /more characters/);
  await cluster.stillServing();
});

test("a job.get or cancel with a 5 MB id is refused in a small reply", async () => {
  assertRefused(await ask(jobSubjects.get, { id: "j".repeat(5 * MB) }), "invalid_value", "id");
  assertRefused(await ask(jobSubjects.cancel, { id: "j".repeat(5 * MB) }), "invalid_value", "id");
  await cluster.stillServing();
});

test("a job.list over records too large to send together skips what does not fit and says how many", async () => {
  const reply = await ask(jobSubjects.list, {});
  assert.equal(reply.json.ok, true, JSON.stringify(reply.json).slice(0, 500));
  assert.ok((reply.json.omitted as number) >= 1, `omitted: ${String(reply.json.omitted)}`);
  assert.ok(reply.bytes.length <= 8 * MB);
  await cluster.stillServing();
});

test("a record accepted under looser bounds fails alone when scheduled; the coordinator goes on", async () => {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const reply = await ask(jobSubjects.get, { id: "job-poisoned-b" });
    const job = reply.json.job as { status: string; message?: string } | undefined;
    if (job?.status === "failed") {
      assert.match(job.message ?? "", /task_type/);
      assert.ok((job.message ?? "").length < 4096);
      break;
    }
    assert.ok(Date.now() < deadline, `still ${job?.status}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  await cluster.stillServing();
});

test("a spec with a 3.8 MB task_type and workers: 4096 is refused at intake, naming the key", async () => {
  const reply = await ask(jobSubjects.submit, {
    spec: spec({ data: [{ path: "train.jsonl", task_type: "t".repeat(3.8 * MB) }], workers: 4096 }),
    base_dir: dir,
  });
  assertRefused(reply, "invalid_spec", "data[0].task_type");
  await cluster.stillServing();
});

test("a spec with 400,000 data entries is refused by count at once, not after checking each entry", async () => {
  const data = Array.from({ length: 400_000 }, () => ({ path: "a" }));
  const started = Date.now();
  const reply = await ask(jobSubjects.submit, { spec: spec({ data }), base_dir: dir });
  assertRefused(reply, "invalid_spec", "data");
  assert.match(reply.json.error!.message, /400000 entries, at most 4096/);
  // the 5.6 MB request's transfer and JSON parse included; checking every entry took 21 s
  assert.ok(Date.now() - started < 5000, `${Date.now() - started} ms`);
  await cluster.stillServing();
});

test("generation_eval.max_new_tokens is refused at intake when the model's context cannot hold it", async () => {
  const evalSpec = (max: number) => spec({ generation_eval: { path: "train.jsonl", max_new_tokens: max } });
  assertRefused(
    await ask(jobSubjects.submit, { spec: evalSpec(1e9), base_dir: dir }),
    "invalid_spec",
    "generation_eval.max_new_tokens",
  );
  const overContext = await ask(jobSubjects.submit, { spec: evalSpec(100_000), base_dir: dir });
  assertRefused(overContext, "invalid_spec", "generation_eval.max_new_tokens");
  assert.match(overContext.json.error!.message, /context of \d+ positions/);
  await cluster.stillServing();
});

test("template_options with 100,000 keys, or a 1 MB path, is refused", async () => {
  const options = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, true]));
  assertRefused(
    await ask(jobSubjects.submit, { spec: spec({ template_options: options }), base_dir: dir }),
    "invalid_spec",
    "template_options",
  );
  assertRefused(
    await ask(jobSubjects.submit, { spec: spec({ output: "o".repeat(MB) }), base_dir: dir }),
    "invalid_spec",
    "output",
  );
  await cluster.stillServing();
});

test("a submit with 10,000 unknown keys gets a refusal of at most 100 problems", async () => {
  const extra = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`unknown_${"u".repeat(200)}_${i}`, 1]));
  const reply = await ask(jobSubjects.submit, { spec: spec(extra), base_dir: dir });
  assert.equal(reply.json.error?.code, "invalid_spec");
  assert.ok(reply.json.errors!.length <= 100);
  assert.ok(reply.bytes.length < SMALL_REPLY);
  await cluster.stillServing();
});

test("after every probe a real job still runs to completion", async () => {
  const submitted = await ask(jobSubjects.submit, { spec: spec({}), base_dir: dir });
  assert.equal(submitted.json.ok, true, JSON.stringify(submitted.json));
  const id = submitted.json.id as string;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const job = (await ask(jobSubjects.get, { id })).json.job as { status: string; message?: string };
    if (job.status === "completed") break;
    assert.ok(!["failed", "canceled"].includes(job.status), job.message);
    assert.ok(Date.now() < deadline, `still ${job.status}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  await cluster.stillServing();
});
