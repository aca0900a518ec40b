// Job submission and cancellation by NATS request: a spec is validated (every problem named with its key)
// and checked against the files it names before it gets an id.
import { existsSync } from "node:fs";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { SpecError, parseSpec } from "../job_spec/load.js";
import type { JobSpec } from "../job_spec/job_spec.js";
import type { Body, JobSubmit } from "../../proto/mod.js";
import type { Job } from "./store.js";

export function newJobId(): string {
  return `job-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
}

/** Files the spec names that do not exist, as `key: no such file PATH`. */
function missingFiles(spec: JobSpec): string[] {
  const out: string[] = [];
  const check = (key: string, file: string | undefined) => {
    if (file !== undefined && !existsSync(file)) out.push(`${key}: no such file or folder ${file}`);
  };
  check("model.path", spec.model.path);
  check("model.init.config", spec.model.init?.config);
  check("model.adapter", spec.model.adapter);
  if (spec.tokenizer !== undefined && spec.tokenizer !== "byte") check("tokenizer", spec.tokenizer);
  spec.data.forEach((d, i) => check(`data[${i}].path`, d.path));
  check("generation_eval.path", spec.generation_eval?.path);
  check("resume_from", spec.resume_from);
  return out;
}

/** A new job record for a valid submission, or a SpecError listing every problem. */
export function acceptSubmission(req: Body<typeof JobSubmit>): Job {
  const where = req.source ?? "job spec";
  const spec = parseSpec(req.spec, where, req.base_dir);
  const missing = missingFiles(spec);
  if (missing.length > 0) throw new SpecError(`${where}:\n  ${missing.join("\n  ")}`);
  const id = newJobId();
  const now = new Date().toISOString();
  return {
    id,
    status: "queued",
    spec: req.spec,
    base_dir: req.base_dir,
    source: req.source,
    created_at: now,
    updated_at: now,
    step: 0,
    total_steps: 0,
    train_loss: {},
    output: spec.output ?? path.join(req.base_dir, "runs", id),
    workers: [],
  };
}
