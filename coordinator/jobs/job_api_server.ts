// The coordinator's side of the public job API: submit, get, list and cancel, each answering in the
// encoding its request named (Content-Type header; none means JSON), refusals as `{ code, message, key }`.
import { headers, type Msg, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { z } from "zod";
import {
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
  type ApiError,
  type Body,
  type JobEncoding,
  type MessageType,
} from "../../proto/mod.js";
import { acceptSubmission } from "./intake.js";
import type { PathRoots } from "../../native/js/path_roots.js";
import { SubmitOnce } from "./submit_once.js";
import type { WorkerMemory } from "./memory_fit.js";
import type { Job, JobStore } from "./store.js";

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

function refusalOf(err: unknown): ApiError[] {
  if (err instanceof JobApiRefusal) return err.problems;
  return [{ code: "internal", message: (err as Error).message, key: null }];
}

/** Answers `subject` with `handle`'s reply, or with the refusal it throws, in the request's encoding. */
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
      void (async () => {
        let encoding: JobEncoding = "json";
        let reply: Body<Rep>;
        try {
          encoding = encodingOf(msg.headers?.get(CONTENT_TYPE_HEADER) || undefined);
          reply = await handle(decodeJobRequest(reqType, msg.data, encoding));
        } catch (err) {
          const problems = refusalOf(err);
          if (problems[0]!.code === "internal") log.error({ err, subject }, "job API request failed");
          reply = { ok: false, error: problems[0], errors: problems } satisfies Reply as unknown as Body<Rep>;
        }
        respond(msg, encodeJobMessage(repType, reply, encoding), encoding);
      })();
    },
  });
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

  serve(nc, log, jobSubjects.list, JobList, JobListReply, (req) => ({
    ok: true,
    jobs: store.all().filter((j) => !req.status || req.status.includes(j.status)),
  }));

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
