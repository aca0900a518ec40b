// Job submission by NATS request: a spec is validated (every problem named with its key) and checked
// against the files it names before it gets an id; its memory estimate goes into the record, and a job that
// no set of the registered workers can hold is refused with the numbers.
import { randomBytes } from "node:crypto";
import { stat } from "node:fs/promises";
import path from "node:path";
import { formatSpecIssues, parseSpec, SpecError } from "../../spec/load.js";
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
import { notRegular } from "../../files/input_files.js";
import { outputInUseMessage, outputOwner, resumesInside } from "./output_owner.js";
import type { Job } from "./store.js";

/** Resolving against the root changes no absolute path: the base of a spec that must have only those. */
const NO_BASE_DIR = path.parse(process.cwd()).root;

export function newJobId(): string {
  return `job-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
}

/** The spec keys that hold paths, with their values as written. */
export function pathKeys(spec: JobSpec): [string, string | undefined][] {
  return [
    ["model.path", spec.model.path],
    ["model.init.config", spec.model.init?.config],
    ["model.adapter", spec.model.adapter],
    ["tokenizer", spec.tokenizer === "byte" ? undefined : spec.tokenizer],
    ...spec.data.map((d, i): [string, string] => [`data[${i}].path`, d.path]),
    ["dataset_dir", spec.dataset_dir],
    ["generation_eval.path", spec.generation_eval?.path],
    ["resume_from", spec.resume_from],
    ["cache_dir", spec.cache_dir],
    ["output", spec.output],
  ];
}

/** Inputs must exist when the job is submitted; outputs and the cache are created by the job. */
const mustExist = (key: string) => key !== "output" && key !== "cache_dir";

/** Inputs that name folders (a model, a checkpoint, an adapter, a LLaMA-Factory data folder); the rest are files. */
const FOLDER_KEYS = new Set(["model.path", "model.adapter", "resume_from", "dataset_dir"]);

/** How long the file checks may hold the event loop before they let it run (lease renewals, requests). */
const SLICE_MS = 10;

/** Lets the event loop run when the current slice of synchronous work has lasted SLICE_MS. */
function slicer(): () => Promise<void> {
  let since = Date.now();
  return async () => {
    if (Date.now() - since < SLICE_MS) return;
    await new Promise((r) => setImmediate(r));
    since = Date.now();
  };
}

/** Why an existing input cannot be read: a FIFO, device or socket, or a file where a folder belongs. */
async function typeProblem(key: string, file: string): Promise<string | undefined> {
  let st;
  try {
    st = await stat(file);
  } catch {
    return `no such file or folder ${file}`;
  }
  if (st.isDirectory()) return undefined; // a data file that is a folder is refused by the reader, by name
  if (FOLDER_KEYS.has(key) && key !== "resume_from") return `${file} is not a folder`;
  const why = notRegular(st);
  return why && `${file} ${why}`;
}

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
 * base_dir was given, paths outside the roots (checked before anything there is looked at), and inputs that
 * do not exist or are not regular files. The file checks let the event loop run between slices.
 */
export async function submissionProblems(req: Body<typeof JobSubmit>, roots?: PathRoots): Promise<ApiError[]> {
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
  let resolved: JobSpec;
  try {
    resolved = parseSpec(req.spec, where, req.base_dir ?? NO_BASE_DIR, roots);
  } catch (err) {
    if (err instanceof SpecError) return [{ code: "invalid_spec", message: err.message, key: err.key }];
    throw err;
  }
  if (roots) {
    const confined = await confinementProblems(resolved, roots, where);
    if (confined.length > 0) return confined;
  }
  const pause = slicer();
  for (const [key, file] of pathKeys(resolved)) {
    if (file === undefined || !mustExist(key)) continue;
    const why = await typeProblem(key, file);
    if (why)
      problems.push({
        code: why.startsWith("no such") ? "missing_file" : "invalid_spec",
        message: `${where}: ${key}: ${why}`,
        key,
      });
    await pause();
  }
  return problems;
}

/**
 * Paths of a resolved spec that leave the coordinator's roots: outputs and the cache must lie under an
 * output root; inputs under a data root or an output root (an earlier job's model or checkpoint).
 */
export async function confinementProblems(spec: JobSpec, roots: PathRoots, where: string): Promise<ApiError[]> {
  const problems: ApiError[] = [];
  const pause = slicer();
  for (const [key, file] of pathKeys(spec)) {
    if (file === undefined) continue;
    const why = mustExist(key)
      ? outsideRoots(file, [...roots.data, ...roots.output], "data")
      : outsideRoots(file, roots.output, "output");
    if (why) problems.push({ code: "invalid_spec", message: `${where}: ${key}: ${why}`, key });
    await pause();
  }
  return problems;
}

/**
 * Why the job may not write into its output folder: it holds another job's files (found on disk, or
 * claimed by a job not yet final, `claimedBy`) and the spec neither overwrites them nor resumes from them.
 */
async function outputProblem(
  spec: JobSpec,
  output: string,
  where: string,
  claimedBy?: string,
): Promise<ApiError | undefined> {
  if (spec.overwrite_output || resumesInside(output, spec.resume_from)) return undefined;
  const owner = claimedBy !== undefined ? { job: claimedBy, entries: [] } : await outputOwner(output);
  if (!owner) return undefined;
  return {
    code: "output_in_use",
    message: `${where}: output: ${outputInUseMessage(output, owner.job, owner.entries)}`,
    key: "output",
  };
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
export async function acceptSubmission(
  req: Body<typeof JobSubmit>,
  workers: WorkerMemory[] = [],
  roots?: PathRoots,
  /** the job not yet final that writes into a folder, if any */
  outputClaimedBy: (output: string) => string | undefined = () => undefined,
): Promise<Job> {
  const problems = await submissionProblems(req, roots);
  if (problems.length > 0) throw new JobApiRefusal(problems);
  const where = clipText(req.source ?? "job spec");
  const baseDir = req.base_dir ?? NO_BASE_DIR;
  const spec = parseSpec(req.spec, where, baseDir, roots);
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
  const output = spec.output ?? path.join(baseDir, "runs", id);
  const inUse = await outputProblem(spec, output, where, outputClaimedBy(output));
  if (inUse) throw new JobApiRefusal([inUse]);
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
    output,
    workers: [],
    memory_estimate: memoryEstimateRecord(estimateJobMemory(spec, shape)),
  };
}
