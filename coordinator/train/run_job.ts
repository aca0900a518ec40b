// A job's starts: one JobRun per start; a ring that fails (a worker lost or silent) requeues the job from
// its last checkpoint, up to MAX_ATTEMPTS starts; a NATS outage requeues it without using up a start;
// anything else ends it as failed or canceled.
import { JobCancelled, JobRun, type JobEnv } from "./job_run.js";
import type { Job } from "../jobs/store.js";
import { silentPeerOf } from "../../proto/mod.js";
import { NatsOutageError, WorkerCommandError, WorkerLostError } from "./worker_client.js";

export type { JobEnv } from "./job_run.js";

/** starts of a job before a failing ring gives up: worker losses requeue it from its last checkpoint */
export const MAX_ATTEMPTS = 3;

/** Runs the job to a final status, or back to the queue after a worker loss; never throws. */
export async function runJob(env: JobEnv, job: Job, workers: string[]): Promise<void> {
  let run: JobRun | undefined;
  let lost: string | undefined;
  const attempt = (job.attempts ?? 0) + 1;
  const outagesBefore = env.outages?.() ?? 0;
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
    // A worker whose ring neighbour went silent names it: that one is as good as lost (it would not answer
    // the release either).
    if (e instanceof WorkerCommandError) lost = silentRingPeer(e, workers);
    const cancelled = e instanceof JobCancelled;
    // Whatever failed while NATS was away (a lost reply, a KV write) failed for the outage, not the job.
    const outage = !cancelled && (e instanceof NatsOutageError || (env.outages?.() ?? 0) > outagesBefore);
    if (outage) {
      await env.connectedAgain?.();
      const where = env.store.get(job.id)?.last_checkpoint;
      env.log.warn({ job: job.id, err: e }, "NATS outage; requeued");
      await updateUntilWritten(env, job.id, {
        status: "queued",
        workers: [],
        attempts: attempt - 1,
        message: `NATS was unreachable mid-job; resuming from ${where ? `its checkpoint at step ${where.step}` : "the start (no checkpoint yet)"}`,
      });
      return;
    }
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

function silentRingPeer(e: WorkerCommandError, workers: readonly string[]): string | undefined {
  const peer = silentPeerOf(e.message);
  return peer !== undefined && workers.includes(peer) ? peer : undefined;
}

/** A job record write retried while NATS comes back (a few seconds), so a requeue is never lost. */
async function updateUntilWritten(env: JobEnv, id: string, patch: Partial<Job>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await env.store.update(id, patch);
      return;
    } catch (err) {
      if (attempt >= 30) {
        env.log.error({ job: id, err }, "could not record the job's requeue");
        return;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}
