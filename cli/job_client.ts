// The user side of the job protocol: submit a spec file, read and follow job records in the JetStream KV
// bucket, list jobs, cancel one, ask for the cluster's status. Only proto/ knows the wire format.
import { readFileSync } from "node:fs";
import path from "node:path";
import { errors, headers, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { parse as parseYaml } from "yaml";
import {
  CONTENT_TYPE_HEADER,
  ClusterStatusReply,
  ClusterStatusRequest,
  FINAL_STATUSES,
  JOBS_BUCKET,
  JobCancel,
  JobCancelReply,
  JobSubmit,
  JobSubmitReply,
  MSGPACK_CONTENT_TYPE,
  decodeJobRecord,
  decodeJobReply,
  decodeMessage,
  encodeJobMessage,
  encodeMessage,
  jobSubjects,
  type ApiError,
  type Body,
  type JobRecordBody,
  type MessageType,
} from "../proto/mod.js";
import { SpecError, parseSpec } from "../spec/load.js";
import { applySpecOverrides } from "./spec_overrides.js";
import type { z } from "zod";

export type { JobRecordBody };
export type ClusterStatus = Body<typeof ClusterStatusReply>;

/** The coordinator said no (bad spec, unknown job): its reason, one problem per line. */
export class JobRefusedError extends Error {
  override name = "JobRefusedError";
}
/** Nobody answered a request: no coordinator runs on this NATS server. */
export class NoCoordinatorError extends Error {
  override name = "NoCoordinatorError";
}
export class JobNotFoundError extends Error {
  override name = "JobNotFoundError";
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 15_000;

/** Reads a YAML or JSON job file as written (paths unresolved), so the coordinator resolves them itself. */
export function readSpecFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new SpecError(
      `${file}: cannot read the job file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  let value: unknown;
  try {
    value = file.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new SpecError(`${file}: ${(err as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SpecError(
      `${file}: a job file is a mapping of keys (model, data, ...), got ${Array.isArray(value) ? "a list" : typeof value}`,
    );
  }
  return value as Record<string, unknown>;
}

/** Silence on a request becomes NoCoordinatorError naming the subject. */
function explainSilence(subject: string, err: unknown): unknown {
  const silent =
    err instanceof errors.NoRespondersError ||
    err instanceof errors.TimeoutError ||
    (err instanceof errors.RequestError && err.isNoResponders());
  if (!silent) return err;
  return new NoCoordinatorError(
    `no coordinator answered on ${subject}: is the cluster up? ('make cluster-up' starts one)`,
    { cause: err },
  );
}

/** One request/reply on an internal subject (msgpack with the wire protocol's version). */
async function ask<Req extends MessageType<z.ZodRawShape>, Rep extends MessageType<z.ZodRawShape>>(
  nc: NatsConnection,
  subject: string,
  reqType: Req,
  body: Body<Req>,
  repType: Rep,
  timeoutMs: number,
) {
  try {
    const msg = await nc.request(subject, encodeMessage(reqType, body), { timeout: timeoutMs });
    return decodeMessage(repType, msg.data);
  } catch (err) {
    throw explainSilence(subject, err);
  }
}

/** One request/reply on a public job API subject; ringtune's CLI speaks its msgpack form. */
async function askJobApi<Req extends MessageType<z.ZodRawShape>, Rep extends MessageType<z.ZodRawShape>>(
  nc: NatsConnection,
  subject: string,
  reqType: Req,
  body: Body<Req>,
  repType: Rep,
  timeoutMs: number,
): Promise<Body<Rep>> {
  const h = headers();
  h.set(CONTENT_TYPE_HEADER, MSGPACK_CONTENT_TYPE);
  let data: Uint8Array;
  try {
    data = (await nc.request(subject, encodeJobMessage(reqType, body, "msgpack"), { timeout: timeoutMs, headers: h }))
      .data;
  } catch (err) {
    throw explainSilence(subject, err);
  }
  return decodeJobReply(repType, data, "msgpack");
}

/** The coordinator's problems, one per line, as the CLI prints them. */
function describeRefusal(reply: { error?: ApiError; errors?: ApiError[] }): string {
  const problems = reply.errors ?? (reply.error ? [reply.error] : []);
  return problems.length > 0 ? problems.map((p) => p.message).join("\n") : "no reason given";
}

export type JobSubmission = Body<typeof JobSubmit>;

/**
 * Reads and validates a job file here, with the schema the coordinator uses, so a typo is reported
 * (naming the key) before anything is sent and even when no cluster runs.
 */
export function prepareJob(file: string, overrides: string[] = []): JobSubmission {
  const spec = applySpecOverrides(readSpecFile(file), overrides);
  const baseDir = path.dirname(path.resolve(file));
  parseSpec(spec, file, baseDir); // throws SpecError naming every bad key
  return { spec, base_dir: baseDir, source: path.resolve(file) };
}

/** Sends a prepared job; returns its id, or throws the coordinator's reasons. */
export async function submitJob(
  nc: NatsConnection,
  job: JobSubmission,
  timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
): Promise<string> {
  const reply = await askJobApi(nc, jobSubjects.submit, JobSubmit, job, JobSubmitReply, timeoutMs);
  if (!reply.ok || !reply.id) {
    throw new JobRefusedError(
      `the coordinator refused ${job.source ?? "the job"}:\n  ${describeRefusal(reply).split("\n").join("\n  ")}`,
    );
  }
  return reply.id;
}

export async function cancelJob(nc: NatsConnection, id: string, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<void> {
  const reply = await askJobApi(nc, jobSubjects.cancel, JobCancel, { id }, JobCancelReply, timeoutMs);
  if (!reply.ok) throw new JobRefusedError(`cannot cancel ${id}: ${describeRefusal(reply)}`);
}

export async function clusterStatus(nc: NatsConnection, timeoutMs = 5_000): Promise<ClusterStatus> {
  const { v: _v, ...status } = await ask(
    nc,
    jobSubjects.clusterStatus,
    ClusterStatusRequest,
    {},
    ClusterStatusReply,
    timeoutMs,
  );
  return status as ClusterStatus;
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
 * record. The watch starts with the last value, so no update between submit and watch is lost.
 */
export async function followJob(kv: KV, id: string, onRecord: (r: JobRecordBody) => void): Promise<JobRecordBody> {
  const watch = await kv.watch({ key: id });
  try {
    for await (const e of watch) {
      if (e.operation !== "PUT" || e.value.length === 0) continue;
      const record = decodeJobRecord(e.value);
      onRecord(record);
      if (isFinal(record)) return record;
    }
  } finally {
    watch.stop();
  }
  throw new Error(
    `the watch on job ${id} ended before the job did (connection closed?): 'ringtune watch ${id}' follows it again`,
  );
}

/**
 * The record as `--json` prints it: the keys a script needs first (`steps` is the record's `step`,
 * `val_loss` is null when there was no validation), then the rest of the record.
 */
export function recordToJson(record: JobRecordBody): Record<string, unknown> {
  const { id, status, step, train_loss, val_loss, output, ...rest } = record;
  return { id, status, steps: step, train_loss, val_loss: val_loss ?? null, output, ...rest };
}
