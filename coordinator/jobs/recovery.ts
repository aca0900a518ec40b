// What a coordinator that just took over does with each job it finds: a job left running or preparing by
// the previous coordinator goes back to the queue (to resume from its last checkpoint), unless a cancel was
// recorded for it (then it is canceled), or it has been running through too many coordinator restarts
// (a job that crashes the coordinator would otherwise crash every one after it, forever).
import { FINAL_STATUSES } from "../../proto/mod.js";
import type { Job } from "./store.js";

/** Coordinator restarts a running job survives; the next one fails it. */
export const MAX_COORDINATOR_RESTARTS = 3;

/** The change to make to `job` at take-over, or undefined when it needs none. */
export function recoverInterruptedJob(job: Job): Partial<Job> | undefined {
  if (FINAL_STATUSES.includes(job.status)) return undefined;
  if (job.cancel_requested) return { status: "canceled", message: "canceled by request", workers: [] };
  if (job.status !== "running" && job.status !== "preparing") return undefined;
  const restarts = (job.coordinator_restarts ?? 0) + 1;
  if (restarts > MAX_COORDINATOR_RESTARTS)
    return {
      status: "failed",
      coordinator_restarts: restarts,
      workers: [],
      message:
        `stopped: the coordinator restarted ${restarts} times while this job ran (at most ${MAX_COORDINATOR_RESTARTS}); ` +
        `it may be what makes the coordinator fail — see the coordinator's log` +
        (job.last_checkpoint ? ` (last checkpoint: step ${job.last_checkpoint.step}, ${job.last_checkpoint.dir})` : ""),
    };
  const from = job.last_checkpoint
    ? `its checkpoint at step ${job.last_checkpoint.step}`
    : "the start (no checkpoint yet)";
  return {
    status: "queued",
    coordinator_restarts: restarts,
    workers: [],
    message: `the coordinator restarted; resuming from ${from}`,
  };
}
