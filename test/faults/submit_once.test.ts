// A submission is handled once: requests that carry one request id create one job, also when the retry
// arrives while the first is still being stored; a request id reused for another spec is refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { canonicalJson, SubmitOnce } from "../../coordinator/jobs/submit_once.js";
import type { Job, JobStore } from "../../coordinator/jobs/store.js";
import { JobApiRefusal } from "../../proto/mod.js";

/** The part of JobStore SubmitOnce reads: the jobs created so far. */
function memoryStore(): { store: JobStore; jobs: Job[] } {
  const jobs: Job[] = [];
  return { store: { all: () => jobs } as unknown as JobStore, jobs };
}

function creator(jobs: Job[], delayMs = 0) {
  let n = 0;
  return async (): Promise<Job> => {
    await new Promise((r) => setTimeout(r, delayMs));
    const job = { id: `job-${++n}`, spec: { lr: 1 }, base_dir: "/d", request_id: "r1" } as unknown as Job;
    jobs.push(job);
    return job;
  };
}

test("a retried submit with the same request id returns the first job and creates none", async () => {
  const { store, jobs } = memoryStore();
  const once = new SubmitOnce(store);
  const create = creator(jobs);
  const first = await once.submit({ spec: { lr: 1 }, base_dir: "/d", request_id: "r1" }, create);
  const again = await once.submit({ spec: { lr: 1 }, base_dir: "/d", request_id: "r1" }, create);
  assert.equal(first.created, true);
  assert.equal(again.created, false);
  assert.equal(again.job.id, first.job.id);
  assert.equal(jobs.length, 1);
});

test("a retry that arrives while the first request is still being stored waits for it", async () => {
  const { store, jobs } = memoryStore();
  const once = new SubmitOnce(store);
  const create = creator(jobs, 50);
  const req = { spec: { lr: 1 }, base_dir: "/d", request_id: "r1" };
  const [a, b] = await Promise.all([once.submit(req, create), once.submit(req, create)]);
  assert.equal(a.job.id, b.job.id);
  assert.deepEqual([a.created, b.created].sort(), [false, true]);
  assert.equal(jobs.length, 1);
});

test("submits without a request id each create a job", async () => {
  const { store, jobs } = memoryStore();
  const once = new SubmitOnce(store);
  const create = creator(jobs);
  await once.submit({ spec: { lr: 1 } }, create);
  await once.submit({ spec: { lr: 1 } }, create);
  assert.equal(jobs.length, 2);
});

test("a request id reused for a different spec is refused, naming the job it belongs to", async () => {
  const { store, jobs } = memoryStore();
  const once = new SubmitOnce(store);
  await once.submit({ spec: { lr: 1 }, base_dir: "/d", request_id: "r1" }, creator(jobs));
  await assert.rejects(
    once.submit({ spec: { lr: 2 }, base_dir: "/d", request_id: "r1" }, creator(jobs)),
    (err: JobApiRefusal) => {
      assert.equal(err.problems[0]!.key, "request_id");
      assert.match(err.message, /request_id 'r1' was already used for job job-1 with a different spec/);
      return true;
    },
  );
  assert.equal(jobs.length, 1);
});

test("specs that differ only in key order are the same submission", () => {
  assert.equal(
    canonicalJson({ a: 1, b: { d: [1, { y: 2, x: 1 }], c: 3 } }),
    canonicalJson({ b: { c: 3, d: [1, { x: 1, y: 2 }] }, a: 1 }),
  );
  assert.notEqual(canonicalJson({ a: [1, 2] }), canonicalJson({ a: [2, 1] }));
});
