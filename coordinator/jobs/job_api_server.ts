// The coordinator's side of the public job API: submit, get, list and cancel, each answering in the
// encoding its request named (Content-Type header; none means JSON), refusals as `{ code, message, key }`.
import { headers, type Msg, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { z } from "zod";
import {
  clipText,
  CONTENT_TYPE_HEADER,
  contentTypeOf,
  decodeJobRequest,
  encodeJobMessage,
  encodingOf,
  FINAL_STATUSES,
  JobApiRefusal,
  JobCancel,
  JobCancelReply,
  JobGet,
  JobGetReply,
  JobList,
  JobListReply,
  jobSubjects,
  JobSubmit,
  JobSubmitReply,
  MESSAGE_LIMIT,
  type ApiError,
  type Body,
  type JobEncoding,
  type MessageType,
} from "../../proto/mod.js";
import { acceptSubmission } from "./intake.js";
import type { PathRoots } from "../../files/path_roots.js";
import { SubmitOnce } from "./submit_once.js";
import type { WorkerMemory } from "./memory_fit.js";
import type { Job, JobStore } from "./store.js";
import { replyBudget } from "./reply_budget.js";
import { listWithinBudget } from "./list_within_budget.js";

export interface JobApiHooks {
  /** a job was accepted and stored */
  onAccepted(job: Job): void;
  /** asks a running job to stop; false when it is not running here */
  requestStop(id: string, why: string): boolean;
  /** the live registered workers' memory, against which a submission's estimate is checked */
  liveMemory(): WorkerMemory[];
  /** where jobs may read and write; undefined: anywhere (in-process tests) */
  roots?: PathRoots;
}

type Reply = { ok: boolean; error?: ApiError; errors?: ApiError[] };

/** A refusal lists at most this many problems: a spec with 400,000 bad entries gets a short answer. */
const MAX_PROBLEMS = 100;

/** The problems of a failed request, each message clipped, so a refusal stays small whatever was sent. */
function refusalOf(err: unknown): ApiError[] {
  const problems =
    err instanceof JobApiRefusal
      ? err.problems
      : [{ code: "internal" as const, message: String((err as Error)?.message ?? err), key: null }];
  return problems.slice(0, MAX_PROBLEMS).map((p) => ({
    ...p,
    message: clipText(p.message, MESSAGE_LIMIT),
    key: p.key === null ? null : clipText(p.key),
  }));
}

function refusalReply<Rep>(problems: ApiError[]): Body<Rep> {
  return { ok: false, error: problems[0], errors: problems } satisfies Reply as unknown as Body<Rep>;
}

/**
 * Answers `subject` with `handle`'s reply, or with the refusal it throws, in the request's encoding. Nothing
 * a request holds can end the process: decoding, handling, encoding and sending are all inside the error
 * handling, and a reply over the server's max_payload becomes a short `too_large` refusal.
 */
function serve<Req extends MessageType<z.ZodRawShape>, Rep extends MessageType<z.ZodRawShape>>(
  nc: NatsConnection,
  log: Logger,
  subject: string,
  reqType: Req,
  repType: Rep,
  handle: (req: Body<Req>) => Promise<Body<Rep>> | Body<Rep>,
): void {
  nc.subscribe(subject, {
    callback: (_err, msg) => {
      void answer(nc, log, subject, msg, reqType, repType, handle).catch((err: unknown) =>
        log.error({ err, subject }, "could not answer a job API request"),
      );
    },
  });
}

async function answer<Req extends MessageType<z.ZodRawShape>, Rep extends MessageType<z.ZodRawShape>>(
  nc: NatsConnection,
  log: Logger,
  subject: string,
  msg: Msg,
  reqType: Req,
  repType: Rep,
  handle: (req: Body<Req>) => Promise<Body<Rep>> | Body<Rep>,
): Promise<void> {
  let encoding: JobEncoding = "json";
  let data: Uint8Array;
  try {
    encoding = encodingOf(msg.headers?.get(CONTENT_TYPE_HEADER) || undefined);
    const reply = await handle(decodeJobRequest(reqType, msg.data, encoding));
    data = encodeJobMessage(repType, reply, encoding);
  } catch (err) {
    const problems = refusalOf(err);
    if (problems[0]!.code === "internal") log.error({ err, subject }, "job API request failed");
    data = encodeJobMessage(repType, refusalReply<Rep>(problems), encoding);
  }
  const budget = replyBudget(nc);
  if (data.length > budget) {
    const message = `the reply (${data.length} bytes) is over the NATS server's max_payload (${budget} bytes for a body)`;
    log.warn({ subject, bytes: data.length }, message);
    data = encodeJobMessage(repType, refusalReply<Rep>([{ code: "too_large", message, key: null }]), encoding);
  }
  respond(msg, data, encoding);
}

function respond(msg: Msg, data: Uint8Array, encoding: JobEncoding): void {
  const h = headers();
  h.set(CONTENT_TYPE_HEADER, contentTypeOf(encoding));
  msg.respond(data, { headers: h });
}

function known(store: JobStore, id: string): Job {
  const job = store.get(id);
  if (!job) throw JobApiRefusal.one("not_found", `no job '${id}'`, "id");
  return job;
}

export function serveJobApi(nc: NatsConnection, store: JobStore, log: Logger, hooks: JobApiHooks): void {
  const submitOnce = new SubmitOnce(store);
  serve(nc, log, jobSubjects.submit, JobSubmit, JobSubmitReply, async (req) => {
    const { job, created } = await submitOnce.submit(req, async () => {
      const accepted = await acceptSubmission(
        req,
        hooks.liveMemory(),
        hooks.roots,
        (output) => store.all().find((j) => j.output === output && !FINAL_STATUSES.includes(j.status))?.id,
      );
      // the record exists before the reply: a watcher never misses it
      return store.create({ ...accepted, request_id: req.request_id });
    });
    if (!created) {
      log.info({ job: job.id, request_id: req.request_id }, "submit retried; answered with the job it created");
      return { ok: true, id: job.id };
    }
    log.info({ job: job.id, source: job.source, request_id: req.request_id }, "job accepted");
    hooks.onAccepted(job);
    return { ok: true, id: job.id };
  });

  serve(nc, log, jobSubjects.get, JobGet, JobGetReply, (req) => ({ ok: true, job: known(store, req.id) }));

  serve(nc, log, jobSubjects.list, JobList, JobListReply, (req) => {
    const wanted = store.all().filter((j) => !req.status || req.status.includes(j.status));
    const { jobs, tooLarge, omitted } = listWithinBudget(wanted, replyBudget(nc));
    for (const id of tooLarge) log.warn({ job: id }, `job record '${id}' is too large to list and is skipped`);
    return omitted > 0 ? { ok: true, jobs, omitted } : { ok: true, jobs };
  });

  serve(nc, log, jobSubjects.cancel, JobCancel, JobCancelReply, async ({ id }) => {
    const job = known(store, id);
    if (FINAL_STATUSES.includes(job.status))
      throw JobApiRefusal.one("job_final", `job ${id} is already ${job.status}`, "id");
    // Recorded before it is acted on: a coordinator that takes over after a crash still sees the cancel.
    await store.update(id, { cancel_requested: true, message: "canceling: stopping the current step" });
    if (!hooks.requestStop(id, "canceled by request"))
      await store.update(id, { status: "canceled", message: "canceled by request" });
    return { ok: true };
  });
}
