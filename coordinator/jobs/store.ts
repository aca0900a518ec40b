// Job records in JetStream KV (JSON, readable by any client): the coordinator is their only writer, so a cached copy plus put is enough;
// readers (ringtune watch, jobs, submit --wait) watch the bucket.
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { decodeJobRecord, encodeJobRecord, JOBS_BUCKET, type JobRecordBody } from "../../proto/mod.js";

export type Job = JobRecordBody;

export class JobStore {
  private readonly cache = new Map<string, Job>();
  /** called with every record written, after it is in KV (the dashboard's live view follows it); must not throw */
  readonly listeners = new Set<(job: Job) => void>();
  private constructor(private readonly kv: KV) {}

  static async open(nc: NatsConnection): Promise<JobStore> {
    const kv = await new Kvm(nc).create(JOBS_BUCKET, { history: 1 });
    const store = new JobStore(kv);
    for await (const key of await kv.keys()) {
      const e = await kv.get(key);
      if (e && e.operation === "PUT") store.cache.set(key, decodeJobRecord(e.value));
    }
    return store;
  }

  get(id: string): Job | undefined {
    return this.cache.get(id);
  }

  /** Every job, oldest first. */
  all(): Job[] {
    return [...this.cache.values()].sort((a, b) => a.created_at.localeCompare(b.created_at));
  }

  async put(job: Job): Promise<Job> {
    job.updated_at = new Date().toISOString();
    this.cache.set(job.id, job);
    await this.kv.put(job.id, encodeJobRecord(job));
    for (const listener of this.listeners) listener(job);
    return job;
  }

  async update(id: string, patch: Partial<Job>): Promise<Job> {
    const job = this.cache.get(id);
    if (!job) throw new Error(`no job ${id}`);
    return this.put({ ...job, ...patch });
  }
}
