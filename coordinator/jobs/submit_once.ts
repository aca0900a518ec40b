// A submission is handled once. A client that did not get the reply to a submit (a coordinator failover,
// a timeout) sends it again with the same request id and gets the job the first request created, not a
// second one. The id is kept in the job record in KV, so a coordinator that takes over knows it too.
import { JobApiRefusal } from "../../proto/mod.js";
import type { Job, JobStore } from "./store.js";

export interface Submission {
  spec: Record<string, unknown>;
  base_dir?: string;
  request_id?: string;
}

export class SubmitOnce {
  /** creations in flight by request id: a retry that arrives before the first is stored waits for it */
  private readonly pending = new Map<string, Promise<Job>>();

  constructor(private readonly store: JobStore) {}

  /**
   * The job for `req`: the one already created with its request id (created: false), or the one `create`
   * stores now. A request id reused for another spec is refused: returning that job would hide the mistake.
   */
  async submit(req: Submission, create: () => Promise<Job>): Promise<{ job: Job; created: boolean }> {
    const requestId = req.request_id;
    if (requestId === undefined) return { job: await create(), created: true };
    const inFlight = this.pending.get(requestId);
    const earlier = inFlight ? await inFlight.catch(() => undefined) : this.find(requestId);
    if (earlier) return { job: this.sameSubmission(earlier, req), created: false };
    const creating = create();
    this.pending.set(requestId, creating);
    try {
      return { job: await creating, created: true };
    } finally {
      if (this.pending.get(requestId) === creating) this.pending.delete(requestId);
    }
  }

  private find(requestId: string): Job | undefined {
    return this.store.all().find((j) => j.request_id === requestId);
  }

  private sameSubmission(job: Job, req: Submission): Job {
    const sameSpec = canonicalJson(job.spec) === canonicalJson(req.spec);
    const sameBase = req.base_dir === undefined || req.base_dir === job.base_dir;
    if (sameSpec && sameBase) return job;
    throw JobApiRefusal.one(
      "invalid_value",
      `request_id '${req.request_id}' was already used for job ${job.id} with a different ` +
        `${sameSpec ? "base_dir" : "spec"}; use a new request id for a new job`,
      "request_id",
    );
  }
}

/** JSON with object keys sorted: two specs that differ only in key order are the same submission. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}
