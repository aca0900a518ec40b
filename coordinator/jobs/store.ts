// Job records in JetStream KV (JSON, readable by any client). The coordinator is their only writer, and
// every write is revision-checked: a record changed behind this coordinator's back (a second coordinator
// that took over while this one was stopped) makes the write fail instead of silently undoing the change.
// Writes to one job are applied one after another, each patch onto the record the previous write left.
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { decodeJobRecord, encodeJobRecord, JOBS_BUCKET, type JobRecordBody } from "../../proto/mod.js";

export type Job = JobRecordBody;

/** A job record whose revision in KV is not the one this coordinator last wrote or read. */
export class StaleJobRecordError extends Error {
  override name = "StaleJobRecordError";
  constructor(
    readonly id: string,
    cause: unknown,
  ) {
    super(`job ${id}: its record was changed by another writer; this coordinator's copy is stale`, { cause });
  }
}

/** A record in the bucket that is not a job record this coordinator can read: it is left alone. */
export interface UnreadableRecord {
  key: string;
  revision: number;
  reason: string;
}

export class JobStore {
  private readonly cache = new Map<string, Job>();
  private readonly revisions = new Map<string, number>();
  /** the write in flight per job: the next one waits for it */
  private readonly writes = new Map<string, Promise<unknown>>();
  /** records skipped at open (old protocol, corruption): reported, never served or overwritten */
  readonly unreadable: UnreadableRecord[] = [];

  /** called with every record written, after it is in KV (the dashboard's live view follows it); must not throw */
  readonly listeners = new Set<(job: Job) => void>();
  private constructor(private readonly kv: KV) {}

  static async open(nc: NatsConnection): Promise<JobStore> {
    const kv = await new Kvm(nc).create(JOBS_BUCKET, { history: 1 });
    const store = new JobStore(kv);
    for await (const key of await kv.keys()) {
      const e = await kv.get(key);
      if (!e || e.operation !== "PUT") continue;
      try {
        store.cache.set(key, decodeJobRecord(e.value));
        store.revisions.set(key, e.revision);
      } catch (err) {
        store.unreadable.push({ key, revision: e.revision, reason: (err as Error).message });
      }
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

  /** Stores a new job; fails if a record with its id exists already (a job is created once). */
  async create(job: Job): Promise<Job> {
    return this.serialised(job.id, async () => {
      job.updated_at = new Date().toISOString();
      const revision = await this.kv.create(job.id, encodeJobRecord(job));
      this.commit(job, revision);
      return job;
    });
  }

  /** Applies `patch` to the job's latest record, written only if nobody else wrote it since. */
  async update(id: string, patch: Partial<Job>): Promise<Job> {
    return this.serialised(id, async () => {
      const job = this.cache.get(id);
      if (!job) throw new Error(`no job ${id}`);
      const next = { ...job, ...patch, updated_at: new Date().toISOString() };
      let revision: number;
      try {
        revision = await this.kv.update(id, encodeJobRecord(next), this.revisions.get(id) ?? 0);
      } catch (err) {
        if (isWrongRevision(err)) throw new StaleJobRecordError(id, err);
        throw err;
      }
      this.commit(next, revision);
      return next;
    });
  }

  /**
   * After a NATS server restart the stream may have lost its last writes (or kept one whose reply was
   * lost): the revisions this store expects no longer match. Only the lease holder writes, so the records
   * in KV are ours: adopt their current revisions, keeping this coordinator's copies as the truth.
   */
  async adoptRevisions(): Promise<void> {
    for (const id of this.cache.keys()) await this.adoptRevision(id);
  }

  /** adoptRevisions for one job: a write of it that timed out may have landed after all. */
  async adoptRevision(id: string): Promise<void> {
    await this.serialised(id, async () => {
      const e = await this.kv.get(id);
      this.revisions.set(id, e ? e.revision : 0);
    });
  }

  private commit(job: Job, revision: number): void {
    this.cache.set(job.id, job);
    this.revisions.set(job.id, revision);
    for (const listener of this.listeners) listener(job);
  }

  private serialised<T>(id: string, write: () => Promise<T>): Promise<T> {
    const previous = this.writes.get(id) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(write);
    this.writes.set(id, next);
    void next
      .catch(() => {})
      .finally(() => {
        if (this.writes.get(id) === next) this.writes.delete(id);
      });
    return next;
  }
}

/** JetStream's "wrong last sequence" (error code 10071): the key's revision moved on. */
function isWrongRevision(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; message?: string };
  return e.api_error?.err_code === 10071 || /wrong last sequence/i.test(e.message ?? "");
}
