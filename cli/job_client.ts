// The user side of the job protocol: submit a spec file, cancel a job, ask for the cluster's status
// (job records are read through proto/job_records.ts). Only proto/ knows the wire format.
import { readFileSync } from "node:fs";
import path from "node:path";
import { errors, headers, type NatsConnection } from "@nats-io/transport-node";
import { parse as parseYaml } from "yaml";
import {
  CONTENT_TYPE_HEADER,
  ClusterStatusReply,
  ClusterStatusRequest,
  JobCancel,
  JobCancelReply,
  JobSubmit,
  JobSubmitReply,
  MSGPACK_CONTENT_TYPE,
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
import { NoCoordinatorError } from "../proto/job_records.js";
import { SpecError, parseSpec } from "../spec/load.js";
import { applySpecOverrides } from "./spec_overrides.js";
import type { z } from "zod";

export type { JobRecordBody };
export type ClusterStatus = Body<typeof ClusterStatusReply>;

/** The coordinator said no (bad spec, unknown job): its reason, one problem per line. */
export class JobRefusedError extends Error {
  override name = "JobRefusedError";
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
  const request = encodeJobMessage(reqType, body, "msgpack");
  const limit = nc.info?.max_payload;
  if (limit !== undefined && request.length > limit)
    throw new JobRefusedError(
      `the ${subject === jobSubjects.submit ? "spec" : "request"} is too large: ${request.length} bytes encoded, ` +
        `over the NATS server's max_payload of ${limit} bytes (list fewer data entries, or name a LLaMA-Factory dataset_dir)`,
    );
  let data: Uint8Array;
  try {
    data = (await nc.request(subject, request, { timeout: timeoutMs, headers: h })).data;
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

/**
 * The record as `--json` prints it: the keys a script needs first (`steps` is the record's `step`,
 * `val_loss` is null when there was no validation), then the rest of the record.
 */
export function recordToJson(record: JobRecordBody): Record<string, unknown> {
  const { id, status, step, train_loss, val_loss, output, ...rest } = record;
  return { id, status, steps: step, train_loss, val_loss: val_loss ?? null, output, ...rest };
}
