// How each kind of failed start ends a job: lost or hung workers re-form the ring without counting the
// start, a worker's error mid-training is retried a few times, an error of the job itself fails it at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  afterFailedStart,
  failureKind,
  MAX_ATTEMPTS,
  MAX_RING_REFORMATIONS,
  natsUnreachable,
  type FailedStart,
} from "../../coordinator/train/failure_policy.js";
import { errors } from "@nats-io/transport-node";
import { lostLinkMessage, silentPeerMessage } from "../../proto/mod.js";
import { WorkerCommandError, WorkerLostError } from "../../coordinator/train/worker_client.js";
import type { Job } from "../../coordinator/jobs/store.js";

function job(patch: Partial<Job> = {}): Job {
  return {
    id: "job-f",
    status: "running",
    spec: {},
    base_dir: "/",
    created_at: "2026-01-01T00:00:00Z",
    updated_at: "2026-01-01T00:00:00Z",
    step: 12,
    total_steps: 40,
    train_loss: {},
    output: "/tmp/out",
    workers: ["w0", "w1"],
    last_checkpoint: { step: 10, dir: "/tmp/out/checkpoints/step-10" },
    ...patch,
  };
}

const start = (error: Error, patch: Partial<FailedStart> = {}): FailedStart => ({
  error,
  cancelled: false,
  phase: "training",
  gone: [],
  ...patch,
});
const answered = (message: string) => new WorkerCommandError(message, "w0", false);

test("a worker that went silent, did not answer, or is gone after the failure is a lost worker", () => {
  assert.equal(failureKind(start(new WorkerLostError("worker w1 stopped sending heartbeats", "w1"))), "worker_lost");
  assert.equal(
    failureKind(start(new WorkerCommandError("worker w1 did not answer 'step'", "w1", true))),
    "worker_lost",
  );
  // The survivor's error about a broken link comes first; the dead peer not answering the release tells why.
  const survivor = answered("worker w0: step: ring peer closed the connection");
  assert.equal(failureKind(start(survivor, { gone: ["w1"] })), "worker_lost");
  assert.equal(failureKind(start(survivor, { phase: "forming", gone: ["w1"] })), "worker_lost");
});

test("a worker's error while the ring forms (a model file it cannot load) is the job's own: it fails at once", () => {
  const bad = answered("worker w0: assign: model.safetensors: header length 900000000 exceeds the file");
  assert.equal(failureKind(start(bad, { phase: "forming" })), "deterministic");
  const patch = afterFailedStart("deterministic", job({ last_checkpoint: undefined }), 1, bad);
  assert.equal(patch.status, "failed");
  assert.equal(patch.message, bad.message, "the worker's message, as it is");
});

test("a peer that cannot be reached while the ring forms is retried a few times, not failed at once", () => {
  for (const why of ["getaddrinfo ENOTFOUND ringtune-worker-1", "connect ECONNREFUSED 10.0.0.7:41234"]) {
    const e = answered(`worker w0: assign: ${why}`);
    assert.equal(failureKind(start(e, { phase: "forming" })), "retryable", why);
    const patch = afterFailedStart("retryable", job(), 1, e);
    assert.equal(patch.status, "queued", why);
    assert.match(patch.message!, /resuming from its checkpoint at step 10 \(attempt 2 of /);
  }
  // the same words from the coordinator's own preparation are no peer's
  assert.equal(failureKind(start(new Error("getaddrinfo ENOTFOUND hub"), { phase: "preparing" })), "deterministic");
});

test("an error of the coordinator's own (spec, data) fails the job at once, naming the last checkpoint", () => {
  const e = new Error("data[0].path: line 3: not valid JSON");
  assert.equal(failureKind(start(e, { phase: "preparing" })), "deterministic");
  const patch = afterFailedStart("deterministic", job(), 1, e);
  assert.equal(patch.status, "failed");
  assert.match(patch.message!, /^data\[0\]\.path: line 3: not valid JSON \(last checkpoint: step 10, /);
});

test("a lost worker requeues the job from its checkpoint and gives the start back", () => {
  const e = new WorkerLostError("worker w1 stopped sending heartbeats", "w1");
  for (const attempt of [1, MAX_ATTEMPTS, MAX_ATTEMPTS + 4]) {
    const patch = afterFailedStart("worker_lost", job({ attempts: attempt, ring_reformations: 2 }), attempt, e);
    assert.equal(patch.status, "queued", `attempt ${attempt}`);
    assert.equal(patch.attempts, attempt - 1, "the start is not counted");
    assert.equal(patch.ring_reformations, 3);
    assert.deepEqual(patch.workers, []);
    assert.match(patch.message!, /stopped sending heartbeats; re-forming the ring from its checkpoint at step 10/);
  }
});

test(`after ${MAX_RING_REFORMATIONS} ring re-formations the job is failed as the likely cause, saying so`, () => {
  const e = new WorkerLostError("worker w1 stopped sending heartbeats", "w1");
  const patch = afterFailedStart("worker_lost", job({ ring_reformations: MAX_RING_REFORMATIONS }), 1, e);
  assert.equal(patch.status, "failed");
  assert.match(patch.message!, new RegExp(`gave up after ${MAX_RING_REFORMATIONS} ring re-formations`));
});

test(`a worker's error mid-training is retried until ${MAX_ATTEMPTS} starts, then fails the job`, () => {
  const e = answered("worker w0: save: ENOSPC: no space left on device");
  assert.equal(failureKind(start(e)), "retryable");
  for (let attempt = 1; attempt < MAX_ATTEMPTS; attempt++) {
    const patch = afterFailedStart("retryable", job(), attempt, e);
    assert.equal(patch.status, "queued");
    assert.equal(patch.attempts, undefined, "the start stays counted");
    assert.match(patch.message!, new RegExp(`\\(attempt ${attempt + 1} of ${MAX_ATTEMPTS}\\)`));
  }
  const last = afterFailedStart("retryable", job(), MAX_ATTEMPTS, e);
  assert.equal(last.status, "failed");
  assert.match(last.message!, new RegExp(`ENOSPC.*gave up after ${MAX_ATTEMPTS} starts`));
});

test("a cancel ends the job canceled, whatever else failed", () => {
  const kind = failureKind(start(new Error("canceled by request"), { cancelled: true, gone: ["w1"] }));
  assert.equal(kind, "canceled");
  assert.equal(afterFailedStart(kind, job(), 1, new Error("canceled by request")).status, "canceled");
});

test("the coordinator's own NATS timing out is an outage, a worker's silence is not", () => {
  const timeout = new errors.TimeoutError();
  assert.equal(natsUnreachable(timeout), true, "a job record write that timed out");
  assert.equal(natsUnreachable(new Error("kv update failed", { cause: timeout })), true, "wrapped");
  assert.equal(
    natsUnreachable(new WorkerCommandError("worker w0 did not answer 'step'", "w0", true, { cause: timeout })),
    false,
  );
  assert.equal(natsUnreachable(new Error("data[0].path: no such file")), false);
});

test("a worker that answers only that its ring broke (a neighbour silent or its link gone) points at a lost worker", () => {
  for (const why of [silentPeerMessage("w1", 30_000), lostLinkMessage("job-f-1", 0, "to the next rank")]) {
    const e = answered(`worker w0: step: ${why}`);
    assert.equal(failureKind(start(e)), "worker_lost", why);
    assert.equal(failureKind(start(e, { phase: "forming" })), "worker_lost", why);
  }
  // Any other answered error keeps its kind.
  assert.equal(failureKind(start(answered("worker w0: step: out of memory"))), "retryable");
});
