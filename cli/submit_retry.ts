// A submit whose reply never came (no coordinator answered: a failover in progress, a timeout) is sent again
// with the same request id, so the coordinator that finally answers creates the job once.
import { randomUUID } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { NoCoordinatorError } from "../proto/job_records.js";
import { submitJob, type JobSubmission } from "./job_client.js";

/** A fresh request id for one submission (all of its retries share it). */
export function newRequestId(): string {
  return `submit-${randomUUID()}`;
}

/** Pause between tries: a standby coordinator takes over within its lease's TTL, a few seconds. */
const RETRY_PAUSE_MS = 1000;

/**
 * Submits `job` (which carries its request_id), trying again while no coordinator answers, until `retryForMs`
 * have passed; a refusal is never retried. `onRetry` hears each retry, to tell the person.
 */
export async function submitWithRetry(
  nc: NatsConnection,
  job: JobSubmission,
  retryForMs: number,
  onRetry: (err: Error) => void = () => {},
): Promise<string> {
  const giveUpAt = Date.now() + retryForMs;
  for (;;) {
    try {
      return await submitJob(nc, job);
    } catch (err) {
      if (!(err instanceof NoCoordinatorError) || Date.now() + RETRY_PAUSE_MS > giveUpAt) throw err;
      onRetry(err);
      await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS));
    }
  }
}
