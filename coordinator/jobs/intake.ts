// Job submission by NATS request: a spec is validated (every problem named with its key) and checked
// against the files it names before it gets an id; its memory estimate goes into the record, and a job that
// no set of the registered workers can hold is refused with the numbers.
import { existsSync } from "node:fs";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { formatSpecIssues, parseSpec } from "../../spec/load.js";
import { jobSpecSchema, type JobSpec } from "../../spec/job_spec.js";
import { estimateJobMemory, modelConfigFile, readModelShape } from "../../spec/job_memory.js";
import { generationLengthProblem, specPositionProblem } from "../../spec/sequence_parallel.js";
import { overlongLists } from "../../spec/list_lengths.js";
import type { MemoryEstimate } from "../../spec/memory_estimate.js";
import {
  clipText,
  JobApiRefusal,
  keyPath,
  type ApiError,
  type Body,
  type JobSubmit,
  type MemoryEstimateRecord,
} from "../../proto/mod.js";
import { memoryRefusal, type WorkerMemory } from "./memory_fit.js";
import { outsideRoots, type PathRoots } from "../../files/path_roots.js";
import type { Job } from "./store.js";

/** Resolving against the root changes no absolute path: the base of a spec that must have only those. */
const NO_BASE_DIR = path.parse(process.cwd()).root;

export function newJobId(): string {
  return `job-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
}

/** The spec keys that hold paths, with their values as written. */
function pathKeys(spec: JobSpec): [string, string | undefined][] {
  return [
    ["model.path", spec.model.path],
    ["model.init.config", spec.model.init?.config],
    ["model.adapter", spec.model.adapter],
    ["tokenizer", spec.tokenizer === "byte" ? undefined : spec.tokenizer],
    ...spec.data.map((d, i): [string, string] => [`data[${i}].path`, d.path]),
    ["generation_eval.path", spec.generation_eval?.path],
    ["resume_from", spec.resume_from],
    ["cache_dir", spec.cache_dir],
    ["output", spec.output],
  ];
}

/** Inputs must exist when the job is submitted; outputs and the cache are created by the job. */
const mustExist = (key: string) => key !== "output" && key !== "cache_dir";

/** Schema problems of a spec, one per issue, keyed as in the job file. */
function schemaProblems(spec: unknown, where: string): ApiError[] {
  const r = jobSpecSchema.safeParse(spec);
  if (r.success) return [];
  const lines = formatSpecIssues(r.error.issues);
  return r.error.issues.flatMap((issue, n): ApiError[] => {
    const at = keyPath(issue.path);
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((k) => {
        const key = at ? `${at}.${k}` : k;
        return { code: "invalid_spec", message: `${where}: ${at || "(top level)"}: unknown key '${k}'`, key };
      });
    }
    return [{ code: "invalid_spec", message: `${where}: ${lines[n]}`, key: at || null }];
  });
}

/**
 * Every problem of a submission: schema problems first; then, for a valid spec, relative paths when no
 * base_dir was given, and files that do not exist.
 */
export function submissionProblems(req: Body<typeof JobSubmit>, roots?: PathRoots): ApiError[] {
  const where = clipText(req.source ?? "job spec");
  const overlong = overlongLists(req.spec);
  if (overlong.length > 0)
    return overlong.map(({ key, message }) => ({ code: "invalid_spec", message: `${where}: ${message}`, key }));
  const schema = schemaProblems(req.spec, where);
  if (schema.length > 0) return schema;
  const written = jobSpecSchema.parse(req.spec);
  const problems: ApiError[] = [];
  if (req.base_dir === undefined) {
    for (const [key, value] of pathKeys(written)) {
      if (value !== undefined && !path.isAbsolute(value))
        problems.push({
          code: "invalid_spec",
          message: `${where}: ${key}: '${value}' is relative and the request has no base_dir; give base_dir or an absolute path`,
          key,
        });
    }
    if (written.output === undefined)
      problems.push({
        code: "invalid_spec",
        message: `${where}: output: required when the request has no base_dir (where the job's outputs go)`,
        key: "output",
      });
    if (problems.length > 0) return problems;
  }
  const resolved = parseSpec(req.spec, where, req.base_dir ?? NO_BASE_DIR);
  if (roots) {
    const confined = confinementProblems(resolved, roots, where);
    if (confined.length > 0) return confined;
  }
  for (const [key, file] of pathKeys(resolved)) {
    if (file !== undefined && mustExist(key) && !existsSync(file))
      problems.push({ code: "missing_file", message: `${where}: ${key}: no such file or folder ${file}`, key });
  }
  return problems;
}

/**
 * Paths of a resolved spec that leave the coordinator's roots: outputs and the cache must lie under an
 * output root; inputs under a data root or an output root (an earlier job's model or checkpoint).
 */
export function confinementProblems(spec: JobSpec, roots: PathRoots, where: string): ApiError[] {
  const problems: ApiError[] = [];
  for (const [key, file] of pathKeys(spec)) {
    if (file === undefined) continue;
    const why = mustExist(key)
      ? outsideRoots(file, [...roots.data, ...roots.output], "data")
      : outsideRoots(file, roots.output, "output");
    if (why) problems.push({ code: "invalid_spec", message: `${where}: ${key}: ${why}`, key });
  }
  return problems;
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
 * A new job record for a valid submission, or a JobApiRefusal listing every problem. `workers` are the live
 * registered workers: a job none of them can hold (when there are enough to tell) is refused.
 */
export function acceptSubmission(req: Body<typeof JobSubmit>, workers: WorkerMemory[] = [], roots?: PathRoots): Job {
  const problems = submissionProblems(req, roots);
  if (problems.length > 0) throw new JobApiRefusal(problems);
  const where = clipText(req.source ?? "job spec");
  const baseDir = req.base_dir ?? NO_BASE_DIR;
  const spec = parseSpec(req.spec, where, baseDir);
  let shape: ReturnType<typeof readModelShape>;
  try {
    shape = readModelShape(spec);
  } catch (err) {
    throw JobApiRefusal.one("invalid_spec", `${where}: model: ${(err as Error).message}`, "model");
  }
  const positions = specPositionProblem(spec, modelConfigFile(spec));
  if (positions) throw JobApiRefusal.one("invalid_spec", `${where}: ${positions}`, "seq_len");
  const generation = generationLengthProblem(spec, modelConfigFile(spec));
  if (generation) throw JobApiRefusal.one("invalid_spec", `${where}: ${generation}`, "generation_eval.max_new_tokens");
  const refusal = memoryRefusal(spec, shape, workers);
  if (refusal) throw JobApiRefusal.one("insufficient_memory", `${where}: ${refusal}`, null);
  const id = newJobId();
  const now = new Date().toISOString();
  return {
    id,
    status: "queued",
    spec: req.spec,
    base_dir: baseDir,
    source: req.source,
    created_at: now,
    updated_at: now,
    step: 0,
    total_steps: 0,
    train_loss: {},
    output: spec.output ?? path.join(baseDir, "runs", id),
    workers: [],
    memory_estimate: memoryEstimateRecord(estimateJobMemory(spec, shape)),
  };
}
