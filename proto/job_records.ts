// Reading job records from the jobs bucket (JetStream KV): one job, every job, or one job followed to its end.
// Every process that needs a job's record reads it here: the CLI for its users, a serving worker to find
// the output folder of a job whose adapter it is asked for.
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { decodeJobRecord, type JobRecordBody } from "./job_record_codec.js";
import { JOBS_BUCKET } from "./job_subjects.js";
import { FINAL_STATUSES } from "./jobs.js";

export type { JobRecordBody };

/** Nobody answered a request: no coordinator runs on this NATS server. */
export class NoCoordinatorError extends Error {
  override name = "NoCoordinatorError";
}

/** The jobs bucket; it is the coordinator's to create (with its own settings), so a missing one is explained. */
export async function openJobs(nc: NatsConnection): Promise<KV> {
  try {
    const kv = await new Kvm(nc).open(JOBS_BUCKET);
    await kv.status(); // open() is lazy: this is where a missing bucket or JetStream shows
    return kv;
  } catch (err) {
    throw new NoCoordinatorError(
      `no job bucket '${JOBS_BUCKET}' on this NATS server (${(err as Error).message}): ` +
        `has a coordinator run here? 'make cluster-up' starts one`,
      { cause: err },
    );
  }
}

export async function getJob(kv: KV, id: string): Promise<JobRecordBody | null> {
  const e = await kv.get(id);
  if (!e || e.operation !== "PUT" || e.value.length === 0) return null;
  return decodeJobRecord(e.value);
}

/**
 * The ids of every job record, from the KV stream's subjects. Not kv.keys(): its iterator ends only when
 * the bucket has no pending update, so it can wait forever while a running job rewrites its record at
 * every step.
 */
async function jobIds(nc: NatsConnection): Promise<string[]> {
  const prefix = `$KV.${JOBS_BUCKET}.`;
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(`KV_${JOBS_BUCKET}`, { subjects_filter: `${prefix}>` });
  return Object.keys(info.state.subjects ?? {}).map((s) => s.slice(prefix.length));
}

/** Every job in the bucket, oldest first (deleted ones left out). */
export async function listJobs(nc: NatsConnection, kv: KV): Promise<JobRecordBody[]> {
  const ids = await jobIds(nc);
  const records = (await Promise.all(ids.map((id) => getJob(kv, id)))).filter((r): r is JobRecordBody => r !== null);
  return records.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
}

export function isFinal(record: JobRecordBody): boolean {
  return FINAL_STATUSES.includes(record.status);
}

/**
 * Calls `onRecord` with the job's current record and every update, until a final status; returns that
 * record. Updates arrive on the record's subject `$KV.<bucket>.<id>` (a plain subscription, made before the
 * current record is read, so no update between the two is lost); the record is read again whenever the
 * connection comes back, as updates sent during an outage are not delivered. No JetStream consumer is
 * created: a client needs only to read the record and to subscribe to its subject.
 */
export async function followJob(
  nc: NatsConnection,
  kv: KV,
  id: string,
  onRecord: (r: JobRecordBody) => void,
): Promise<JobRecordBody> {
  const sub = nc.subscribe(`$KV.${JOBS_BUCKET}.${id}`);
  let latest = { at: "", step: 0 };
  let final: JobRecordBody | undefined;
  /** Shows a record unless a later one was already shown (by time, then step); true once the job has ended. */
  const show = (record: JobRecordBody): boolean => {
    const older = record.updated_at < latest.at || (record.updated_at === latest.at && record.step < latest.step);
    if (final || older) return final !== undefined;
    latest = { at: record.updated_at, step: record.step };
    onRecord(record);
    if (isFinal(record)) final = record;
    return final !== undefined;
  };
  const reread = async () => {
    const record = await getJob(kv, id).catch(() => null);
    if (record && show(record)) sub.unsubscribe();
  };
  const statuses = nc.status();
  const reconnects = (async () => {
    for await (const s of statuses) if (s.type === "reconnect") await reread();
  })();
  try {
    await nc.flush();
    await reread();
    for await (const m of sub) {
      if (m.data.length === 0) continue; // a delete or purge marker
      let record: JobRecordBody;
      try {
        record = decodeJobRecord(m.data);
      } catch {
        continue; // not a record this client reads; the next one may be
      }
      if (show(record)) break;
    }
  } finally {
    sub.unsubscribe();
    (statuses as { stop?: () => void }).stop?.();
    void reconnects.catch(() => {});
  }
  if (final) return final;
  throw new Error(
    `the watch on job ${id} ended before the job did (connection closed?): 'ringtune watch ${id}' follows it again`,
  );
}
