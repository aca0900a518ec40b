// JSON Schema documents of the public job API, generated from the zod schemas that validate it, so a
// client in any language can check a job spec or a reply with a stock validator. proto/schema/ holds the
// generated files (`make schema` rewrites them; a test fails when they differ from what this makes).
import { z } from "zod";
import { jobSpecSchema } from "../../spec/job_spec.js";
import {
  ApiError,
  JobCancel,
  JobCancelReply,
  JobGet,
  JobGetReply,
  JobList,
  JobListReply,
  JobRecord,
  JobSubmit,
  JobSubmitReply,
  JOB_API_VERSION,
  type MessageType,
} from "../../proto/mod.js";

/** Where the generated documents live, relative to the repository root. */
export const SCHEMA_DIR = "proto/schema";

/** `v` in a request: absent means the current version; an integer or "major.minor" string otherwise. */
const RequestVersion = z
  .union([z.number().int(), z.string().regex(/^\d+(\.\d+)*$/)])
  .optional()
  .describe(`job API major version; absent means the current one (${JOB_API_VERSION})`);

function request(type: MessageType<z.ZodRawShape>, extra: z.ZodRawShape = {}): z.ZodType {
  return type.schema.extend({ ...extra, v: RequestVersion }).strict();
}

function reply(type: MessageType<z.ZodRawShape>): z.ZodType {
  return type.schema;
}

const documents: Record<string, { title: string; schema: z.ZodType; io: "input" | "output" }> = {
  "job_spec.json": { title: "ringtune job spec (a job file, YAML or JSON)", schema: jobSpecSchema, io: "input" },
  "job_submit.json": {
    title: "request on ringtune.job.submit",
    schema: request(JobSubmit, { spec: jobSpecSchema }),
    io: "input",
  },
  "job_submit_reply.json": { title: "reply on ringtune.job.submit", schema: reply(JobSubmitReply), io: "output" },
  "job_get.json": { title: "request on ringtune.job.get", schema: request(JobGet), io: "input" },
  "job_get_reply.json": { title: "reply on ringtune.job.get", schema: reply(JobGetReply), io: "output" },
  "job_list.json": { title: "request on ringtune.job.list", schema: request(JobList), io: "input" },
  "job_list_reply.json": { title: "reply on ringtune.job.list", schema: reply(JobListReply), io: "output" },
  "job_cancel.json": { title: "request on ringtune.job.cancel", schema: request(JobCancel), io: "input" },
  "job_cancel_reply.json": { title: "reply on ringtune.job.cancel", schema: reply(JobCancelReply), io: "output" },
  "job_record.json": {
    title: "a job record: the value of key <job id> in KV bucket ringtune-jobs",
    schema: JobRecord.schema,
    io: "output",
  },
  "api_error.json": { title: "one problem of a refused request", schema: ApiError, io: "output" },
};

/** File name -> the document's text (pretty JSON with a final newline), in a stable order. */
export function jsonSchemaFiles(): Map<string, string> {
  const out = new Map<string, string>();
  for (const [file, { title, schema, io }] of Object.entries(documents)) {
    const doc = { $id: `urn:ringtune:job-api:${file}`, title, ...z.toJSONSchema(schema, { io }) };
    out.set(file, JSON.stringify(doc, null, 2) + "\n");
  }
  return out;
}
