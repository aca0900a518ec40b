// What a coordinator that takes over does with the jobs it finds: resumes interrupted ones, finishes a cancel
// the previous one recorded, and stops a job that has been running through too many coordinator restarts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_COORDINATOR_RESTARTS, recoverInterruptedJob } from "../../coordinator/jobs/recovery.js";
import type { Job } from "../../coordinator/jobs/store.js";

function job(patch: Partial<Job>): Job {
  return {
    id: "job-r",
    status: "running",
    spec: {},
    base_dir: "/",
    created_at: "2026-01-01T00:00:00Z",
    updated_at: "2026-01-01T00:00:00Z",
    step: 7,
    total_steps: 20,
    train_loss: {},
    output: "/tmp/out",
    workers: ["w0"],
    ...patch,
  };
}

test("a running job goes back to the queue from its checkpoint, counting the restart", () => {
  const patch = recoverInterruptedJob(job({ last_checkpoint: { step: 5, dir: "/tmp/out/checkpoints/step-5" } }))!;
  assert.equal(patch.status, "queued");
  assert.equal(patch.coordinator_restarts, 1);
  assert.deepEqual(patch.workers, []);
  assert.match(patch.message!, /resuming from its checkpoint at step 5/);
});

test("a cancel recorded before the crash is carried out, whatever the job was doing", () => {
  for (const status of ["queued", "waiting", "preparing", "running"] as const)
    assert.equal(recoverInterruptedJob(job({ status, cancel_requested: true }))?.status, "canceled", status);
});

test(`a job running through more than ${MAX_COORDINATOR_RESTARTS} coordinator restarts is failed, saying why`, () => {
  const patch = recoverInterruptedJob(job({ coordinator_restarts: MAX_COORDINATOR_RESTARTS }))!;
  assert.equal(patch.status, "failed");
  assert.match(patch.message!, new RegExp(`restarted ${MAX_COORDINATOR_RESTARTS + 1} times while this job ran`));
});

test("final and queued jobs are left as they are", () => {
  for (const status of ["completed", "failed", "canceled", "queued", "waiting"] as const)
    assert.equal(recoverInterruptedJob(job({ status })), undefined, status);
});
