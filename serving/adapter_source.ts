// Where an adapter to load lives: a PEFT folder, or a finished job named by its id, whose adapter is in
// the job's final outputs (the job record names its output folder).
import { existsSync } from "node:fs";
import path from "node:path";
import { outsideRoots } from "../files/path_roots.js";
import type { NatsConnection } from "@nats-io/transport-node";
import { getJob, openJobs } from "../proto/job_records.js";
import { finalLayout } from "../proto/output_layout.js";
import { badRequest, ServeError } from "./errors.js";

const JOB_ID = /^job-[A-Za-z0-9_-]+$/;

/** The output folder of job `id`, or null when there is no such job. */
export type JobOutputLookup = (id: string) => Promise<string | null>;

/** Job ids looked up in the cluster's job records, which name each job's output folder. */
export function jobOutputsOver(nc: NatsConnection): JobOutputLookup {
  return async (id) => (await getJob(await openJobs(nc), id))?.output ?? null;
}

export async function resolveAdapterSource(source: string, lookup: JobOutputLookup | null): Promise<string> {
  if (!JOB_ID.test(source) || existsSync(source)) return path.resolve(source);
  if (!lookup)
    throw badRequest(`'${source}' is a job id, but this server has no NATS connection to look jobs up`, "lora_path");
  const output = await lookup(source);
  if (output === null) throw new ServeError(404, "not_found_error", `no job '${source}'`, "lora_path", "job_not_found");
  const dir = finalLayout(output).adapter;
  if (!existsSync(dir))
    throw badRequest(
      `job '${source}' has no adapter at ${dir} (not finished, or not a LoRA job)`,
      "lora_path",
      "no_adapter",
    );
  return dir;
}

/** `dir` when it lies under one of `roots` (symlinks followed); else a refusal naming lora_path. */
export function confinedAdapter(dir: string, roots: string[]): string {
  const why = outsideRoots(dir, roots, "data");
  if (!why) return dir;
  const message = why
    .replace("the coordinator's data root(s)", "the server's adapter root(s)")
    .replace(" (--data-root)", "");
  throw new ServeError(403, "permission_error", `lora_path: ${message} (--adapter-root)`, "lora_path", "outside_roots");
}
