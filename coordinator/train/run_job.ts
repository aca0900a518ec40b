// A job's starts: one JobRun per start; a ring that fails (a worker lost or silent) requeues the job from
// its last checkpoint, up to MAX_ATTEMPTS starts; anything else ends it as failed or canceled.
import { JobCancelled, JobRun, type JobEnv } from "./job_run.js";
import type { Job } from "../jobs/store.js";
import { WorkerCommandError, WorkerLostError } from "./worker_client.js";

export type { JobEnv } from "./job_run.js";

/** starts of a job before a failing ring gives up: worker losses requeue it from its last checkpoint */
export const MAX_ATTEMPTS = 3;

/** Runs the job to a final status, or back to the queue after a worker loss; never throws. */
export async function runJob(env: JobEnv, job: Job, workers: string[]): Promise<void> {
  let run: JobRun | undefined;
  let lost: string | undefined;
  const attempt = (job.attempts ?? 0) + 1;
  try {
    job = await env.store.update(job.id, { attempts: attempt });
    run = new JobRun(env, job, workers);
    try {
      await run.run();
    } finally {
      run.close();
    }
  } catch (err) {
    const e = err as Error;
    if (e instanceof WorkerLostError) lost = e.worker;
    const cancelled = e instanceof JobCancelled;
    const ringFailed = e instanceof WorkerLostError || e instanceof WorkerCommandError;
    // Every worker of a failed ring must show it is alive (a fresh heartbeat) before it is scheduled again: a
    // worker that is shutting down still answers with an error, and must not be picked for the restart.
    // Healthy ones are back with their next heartbeat.
    if (ringFailed) for (const w of workers) env.suspect(w);
    const latest = env.store.get(job.id)!;
    const where = latest.last_checkpoint
      ? `its checkpoint at step ${latest.last_checkpoint.step}`
      : "the start (no checkpoint yet)";
    if (ringFailed && attempt < MAX_ATTEMPTS) {
      // A worker died or its ring broke: nothing is lost but the steps since the last checkpoint.
      env.log.warn({ job: job.id, err: e }, "ring failed; requeued");
      await env.store
        .update(job.id, {
          status: "queued",
          workers: [],
          message: `${e.message}; resuming from ${where} (attempt ${attempt + 1} of ${MAX_ATTEMPTS})`,
        })
        .catch(() => {});
    } else {
      env.log[cancelled ? "info" : "error"]({ job: job.id, err: e }, cancelled ? "job stopped" : "job failed");
      const suffix = latest.last_checkpoint
        ? ` (last checkpoint: step ${latest.last_checkpoint.step}, ${latest.last_checkpoint.dir})`
        : "";
      const gaveUp = ringFailed ? `; gave up after ${attempt} starts (at most ${MAX_ATTEMPTS})` : "";
      await env.store
        .update(job.id, { status: cancelled ? "canceled" : "failed", message: e.message + gaveUp + suffix })
        .catch(() => {});
    }
  } finally {
    await run?.release(lost);
  }
}
