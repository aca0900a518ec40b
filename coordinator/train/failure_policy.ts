// What a failed start of a job means for the job. The kinds are told apart because they call for opposite
// answers: a worker that died or hung says nothing about the job, so the ring is re-formed from the last
// checkpoint as often as it takes (bounded only against a job that kills every worker it gets); an error a
// worker answered mid-training may pass (a disk briefly full), so a few starts are allowed; an error in the
// job itself (its spec, its data, a model file a worker cannot load) would fail the same way every time, so
// it fails the job at once, with its message.
import { errors } from "@nats-io/transport-node";
import type { Job } from "../jobs/store.js";
import { WorkerCommandError, WorkerLostError } from "./worker_client.js";
import { ringBrokeIn } from "../../proto/mod.js";

/** starts of a job that may end in a worker's error mid-training before the job is failed */
export const MAX_ATTEMPTS = 3;

/** rings re-formed after lost or hung workers before the job is taken to be what kills them */
export const MAX_RING_REFORMATIONS = 10;

export type FailureKind = "canceled" | "worker_lost" | "retryable" | "deterministic";

/** Where a start was when it failed: an error answered while the ring formed is the job's own. */
export type RunPhase = "preparing" | "forming" | "training";

export interface FailedStart {
  error: Error;
  cancelled: boolean;
  phase: RunPhase;
  /** workers of the ring that did not answer afterwards (dead or hung) */
  gone: readonly string[];
}

export function failureKind(f: FailedStart): FailureKind {
  const e = f.error;
  if (f.cancelled) return "canceled";
  if (e instanceof WorkerLostError || (e instanceof WorkerCommandError && e.unanswered) || f.gone.length > 0)
    return "worker_lost";
  // A worker that answered only that its ring broke under it (a neighbour silent, or its link gone) points
  // at a lost neighbour, even when that neighbour still managed to answer the release while shutting down.
  if (e instanceof WorkerCommandError && ringBrokeIn(e.message)) return "worker_lost";
  if (e instanceof WorkerCommandError && f.phase === "training") return "retryable";
  // A peer's address that did not resolve or answer while the ring formed says nothing about the job: a
  // name not yet in DNS, a network briefly partitioned. A few starts are allowed, as for errors mid-training.
  if (e instanceof WorkerCommandError && f.phase === "forming" && PEER_UNREACHABLE.test(e.message)) return "retryable";
  return "deterministic";
}

/** The system errors of a connection to a peer that a later attempt may not meet. */
const PEER_UNREACHABLE = /\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT)\b/;

/** The record change for a failed start: back to the queue, or a final status whose message says why. */
export function afterFailedStart(kind: FailureKind, job: Job, attempt: number, error: Error): Partial<Job> {
  const checkpoint = job.last_checkpoint;
  const from = checkpoint ? `its checkpoint at step ${checkpoint.step}` : "the start (no checkpoint yet)";
  const lastCheckpoint = checkpoint ? ` (last checkpoint: step ${checkpoint.step}, ${checkpoint.dir})` : "";
  const failed = (why: string): Partial<Job> => ({ status: "failed", message: why + lastCheckpoint });
  switch (kind) {
    case "canceled":
      return { status: "canceled", message: error.message + lastCheckpoint };
    case "worker_lost": {
      const reformations = (job.ring_reformations ?? 0) + 1;
      if (reformations > MAX_RING_REFORMATIONS)
        return {
          ...failed(`${error.message}; gave up after ${MAX_RING_REFORMATIONS} ring re-formations for lost workers`),
          ring_reformations: reformations,
        };
      return {
        status: "queued",
        workers: [],
        worker_devices: [],
        attempts: attempt - 1, // a lost worker is no fault of the job: the start is not counted
        ring_reformations: reformations,
        message: `${error.message}; re-forming the ring from ${from} (re-formation ${reformations})`,
      };
    }
    case "retryable":
      if (attempt >= MAX_ATTEMPTS)
        return failed(`${error.message}; gave up after ${attempt} starts (at most ${MAX_ATTEMPTS})`);
      return {
        status: "queued",
        workers: [],
        worker_devices: [],
        message: `${error.message}; resuming from ${from} (attempt ${attempt + 1} of ${MAX_ATTEMPTS})`,
      };
    case "deterministic":
      return failed(error.message);
  }
}

/**
 * Whether `err` comes from the coordinator's own use of NATS (a job record write that timed out while the
 * server hung): the job is not at fault. A worker's silence is not this: it arrives as a WorkerCommandError.
 */
export function natsUnreachable(err: unknown): boolean {
  if (err instanceof WorkerCommandError) return false;
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e instanceof errors.TimeoutError || e instanceof errors.ConnectionError) return true;
    if (e instanceof errors.ClosedConnectionError) return true; // this coordinator stepped down mid-job
    if (e instanceof errors.NoRespondersError) return true; // JetStream not answering yet after a restart
  }
  return false;
}
