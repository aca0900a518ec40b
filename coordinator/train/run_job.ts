// A job through its attempts: one JobAttempt per start. How a failed start ends is failure_policy's call: a
// lost or hung worker re-forms the ring from the last checkpoint without counting the start, a worker's error
// mid-training is retried a few times, an error of the job itself fails it at once; a NATS outage requeues
// it uncounted.
import { CoordinatorStopping, JobCancelled, JobAttempt, RingGrows, type JobEnv } from "./attempt.js";
import { afterFailedStart, failureKind, natsUnreachable } from "./failure_policy.js";
import { StaleJobRecordError, type Job } from "../jobs/store.js";
import type { JobSpec } from "../../spec/job_spec.js";
import { silentPeerOf } from "../../proto/mod.js";
import { NatsOutageError, WorkerCommandError, WorkerLostError } from "./worker_client.js";

export type { JobEnv } from "./attempt.js";
export { MAX_ATTEMPTS, MAX_RING_REFORMATIONS } from "./failure_policy.js";

/** Runs the job to a final status, or back to the queue after a worker loss; never throws. */
export async function runJob(env: JobEnv, job: Job, workers: string[], spec?: JobSpec): Promise<void> {
  let run: JobAttempt | undefined;
  let released = false;
  let lost: string | undefined;
  const attempt = (job.attempts ?? 0) + 1;
  const outagesBefore = env.outages?.() ?? 0;
  try {
    job = await env.store.update(job.id, { attempts: attempt });
    run = new JobAttempt(env, job, workers, spec);
    try {
      await run.run();
    } finally {
      run.close();
    }
  } catch (err) {
    const e = err as Error;
    if (e instanceof CoordinatorStopping) {
      // Nothing is written and no worker is asked anything: this coordinator's connection is closed, and the
      // next coordinator finds the record as it was and resumes the job.
      released = true;
      env.log.info({ job: job.id }, "the coordinator is stopping; the next one resumes the job");
      return;
    }
    if (e instanceof RingGrows) {
      // Not a failure: the ring is let go and the job queued again; the scheduler re-forms it with the idle
      // workers up to its max, from the checkpoint just written, using up no start.
      released = true;
      await run?.release();
      env.log.info({ job: job.id, step: e.step, from: e.from }, "ring grows");
      await updateUntilWritten(env, job.id, {
        status: "queued",
        workers: [],
        attempts: attempt - 1,
        message: e.message,
      });
      return;
    }
    if (e instanceof WorkerLostError) lost = e.worker;
    // A worker whose ring neighbour went silent names it: that one is as good as lost (it would not answer
    // the release either).
    if (e instanceof WorkerCommandError) lost = silentRingPeer(e, workers);
    const cancelled = e instanceof JobCancelled;
    // Whatever failed while NATS was away (a lost reply, a KV write) failed for the outage, not the job.
    const outage =
      !cancelled && (e instanceof NatsOutageError || natsUnreachable(e) || (env.outages?.() ?? 0) > outagesBefore);
    if (outage) {
      await env.connectedAgain?.();
      const where = env.store.get(job.id)?.last_checkpoint;
      env.log.warn({ job: job.id, err: e }, "NATS outage; requeued");
      await updateUntilWritten(env, job.id, {
        status: "queued",
        workers: [],
        worker_devices: [],
        attempts: attempt - 1,
        message: `NATS was unreachable mid-job; resuming from ${where ? `its checkpoint at step ${where.step}` : "the start (no checkpoint yet)"}`,
      });
      return;
    }
    // Released first: a worker that no longer answers shows that the ring broke under the job (a peer died or
    // hung), whatever error the survivors reported.
    released = true;
    const unanswered = run ? await run.release(lost) : [];
    // The worker named as lost (gone, or the silent ring peer) is not asked to release: it counts as gone.
    const gone = lost && !unanswered.includes(lost) ? [...unanswered, lost] : unanswered;
    const kind = failureKind({ error: e, cancelled, phase: run?.phase ?? "preparing", gone });
    // Every worker of a failed ring must show it is alive (a fresh heartbeat) before it is scheduled again: a
    // worker that is shutting down still answers with an error, and must not be picked for the restart.
    // Healthy ones are back with their next heartbeat.
    if (e instanceof WorkerLostError || e instanceof WorkerCommandError || gone.length > 0)
      for (const w of workers) env.suspect(w);
    const patch = afterFailedStart(kind, env.store.get(job.id)!, attempt, e);
    const requeued = patch.status === "queued";
    const level = requeued ? "warn" : cancelled ? "info" : "error";
    env.log[level]({ job: job.id, err: e, kind, gone }, requeued ? "start failed; requeued" : `job ${patch.status}`);
    await updateUntilWritten(env, job.id, patch);
  } finally {
    if (!released) await run?.release(lost);
  }
}

function silentRingPeer(e: WorkerCommandError, workers: readonly string[]): string | undefined {
  const peer = silentPeerOf(e.message);
  return peer !== undefined && workers.includes(peer) ? peer : undefined;
}

/**
 * A job record write retried while NATS comes back (a few seconds), so a requeue or a final status is never
 * lost. A write that timed out may have landed once the server answered again, moving the record's revision
 * on: while this coordinator still holds the lease, the record is its own and the new revision is adopted.
 */
async function updateUntilWritten(env: JobEnv, id: string, patch: Partial<Job>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await env.store.update(id, patch);
      return;
    } catch (err) {
      if (env.nc.isClosed()) {
        env.log.warn({ job: id, patch }, "this coordinator stepped down; the next one resumes the job");
        return;
      }
      if (attempt >= 30) {
        env.log.error({ job: id, err, patch }, "could not record the job's new state");
        return;
      }
      if (err instanceof StaleJobRecordError) {
        if (!(await env.holdsLease?.())) {
          env.log.error({ job: id, err }, "the job's record moved on and the lease is gone; leaving it");
          return;
        }
        await env.store.adoptRevision(id).catch(() => {});
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}
