// The job records in JetStream KV against a real nats-server: a record that cannot be decoded is reported
// and skipped while every other job is served; writes are revision-checked, so a second writer's change is
// never silently overwritten; one store's concurrent writes to a job all land; a job id is created once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { JobStore, StaleJobRecordError, type Job } from "../../coordinator/jobs/store.js";
import { encodeJobRecord, JOBS_BUCKET } from "../../proto/mod.js";
import { natsForFile } from "../helpers/nats_for_file.js";

const nats = natsForFile();

let n = 0;
function newJob(): Job {
  const now = new Date().toISOString();
  return {
    id: `job-store-${n++}`,
    status: "queued",
    spec: {},
    base_dir: "/",
    created_at: now,
    updated_at: now,
    step: 0,
    total_steps: 0,
    train_loss: {},
    output: "/tmp/x",
    workers: [],
  };
}

test("undecodable KV records (old protocol, corruption) are reported and skipped; the others are served", async () => {
  const kv = await new Kvm(nats.nc).create(JOBS_BUCKET, { history: 1 });
  const good = newJob();
  await kv.put(good.id, encodeJobRecord(good));
  await kv.put("job-garbage", new Uint8Array([0xff, 0x00, 0x13]));
  await kv.put("job-old", JSON.stringify({ id: "job-old", state: "RUNNING" }));
  const store = await JobStore.open(nats.nc);
  assert.equal(store.get(good.id)?.status, "queued");
  assert.equal(store.get("job-garbage"), undefined);
  const skipped = store.unreadable.map((u) => u.key).sort();
  assert.deepEqual(skipped, ["job-garbage", "job-old"]);
  for (const u of store.unreadable) assert.ok(u.reason.length > 0, `${u.key} has a reason`);
  // still writable: the good job's updates go through
  assert.equal((await store.update(good.id, { status: "running" })).status, "running");
});

test("a write over a record another writer changed fails as stale instead of undoing the change", async () => {
  const a = await JobStore.open(nats.nc);
  const job = await a.create(newJob());
  const b = await JobStore.open(nats.nc);
  await b.update(job.id, { status: "canceled", message: "canceled by the other coordinator" });
  await assert.rejects(a.update(job.id, { status: "running" }), StaleJobRecordError);
  const fresh = await JobStore.open(nats.nc);
  assert.equal(fresh.get(job.id)?.status, "canceled");
});

test("concurrent updates of one job by one store all land, each on the record the previous one left", async () => {
  const store = await JobStore.open(nats.nc);
  const job = await store.create(newJob());
  await Promise.all([
    store.update(job.id, { step: 1 }),
    store.update(job.id, { message: "m" }),
    store.update(job.id, { lr: 0.5 }),
    store.update(job.id, { attempts: 2 }),
  ]);
  const seen = (await JobStore.open(nats.nc)).get(job.id)!;
  assert.deepEqual([seen.step, seen.message, seen.lr, seen.attempts], [1, "m", 0.5, 2]);
});

test("a job id is created once: a second create of the same id is refused", async () => {
  const store = await JobStore.open(nats.nc);
  const job = newJob();
  await store.create(job);
  await assert.rejects(store.create({ ...job, status: "running" }));
  assert.equal((await JobStore.open(nats.nc)).get(job.id)?.status, "queued");
});
