// Job submission and cancellation by NATS request: a spec is validated (every problem named with its key)
// and checked against the files it names before it gets an id; its memory estimate goes into the record, and
// a job that no set of the registered workers can hold is refused with the numbers.
import { existsSync } from "node:fs";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { SpecError, parseSpec } from "../job_spec/load.js";
import type { JobSpec } from "../job_spec/job_spec.js";
import { estimateJobMemory, readModelShape } from "../job_spec/job_memory.js";
import type { MemoryEstimate } from "../job_spec/memory_estimate.js";
import type { Body, JobSubmit, MemoryEstimateRecord } from "../../proto/mod.js";
import { memoryRefusal, type WorkerMemory } from "./memory_fit.js";
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

export function memoryEstimateRecord(e: MemoryEstimate): MemoryEstimateRecord {
  return {
    per_rank_bytes: e.total,
    params_bytes: e.params,
    grads_bytes: e.grads,
    optimizer_bytes: e.optimizer,
    activations_bytes: e.activations,
    phase: e.phase,
  };
}

/**
 * A new job record for a valid submission, or a SpecError listing every problem. `workers` are the live
 * registered workers: a job none of them can hold (when there are enough to tell) is refused.
 */
export function acceptSubmission(req: Body<typeof JobSubmit>, workers: WorkerMemory[] = []): Job {
  const where = req.source ?? "job spec";
  const spec = parseSpec(req.spec, where, req.base_dir);
  const missing = missingFiles(spec);
  if (missing.length > 0) throw new SpecError(`${where}:\n  ${missing.join("\n  ")}`);
  const shape = readModelShape(spec);
  const refusal = memoryRefusal(spec, shape, workers);
  if (refusal) throw new SpecError(`${where}: ${refusal}`);
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
    memory_estimate: memoryEstimateRecord(estimateJobMemory(spec, shape)),
  };
}
