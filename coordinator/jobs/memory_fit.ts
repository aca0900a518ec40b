// Whether a job fits its workers' memory: each worker reports what it can use at registration, and a job
// whose per-rank estimate exceeds it is refused with the numbers, before any worker allocates anything.
import { formatBytes } from "../../spec/byte_units.js";
import { describeNeed, estimateJobMemory, type WorkerDeviceKind } from "../../spec/job_memory.js";
import type { JobSpec } from "../../spec/job_spec.js";
import type { ModelShape } from "../../spec/memory_estimate.js";
import { minWorkers } from "../../spec/workers_spec.js";

export interface WorkerMemory {
  id: string;
  /** usable bytes the worker reported */
  memoryBytes: number;
  /** its threads (each has its own attention tiles) */
  cores: number;
  /** what it computes on (default cpu): a GPU's rank also holds a bf16 compute copy */
  device?: WorkerDeviceKind;
}

function estimateFor(spec: JobSpec, shape: ModelShape, w: WorkerMemory) {
  return estimateJobMemory(spec, shape, Math.max(1, w.cores), w.device ?? "cpu");
}

/** The workers (of those given) whose memory holds one rank of the job. */
export function workersThatFit(spec: JobSpec, shape: ModelShape, workers: WorkerMemory[]): WorkerMemory[] {
  return workers.filter((w) => estimateFor(spec, shape, w).total <= w.memoryBytes);
}

/**
 * Why the job can never start on these (live, registered) workers, or undefined when it can or when too
 * few workers are registered to tell (more may join).
 */
export function memoryRefusal(spec: JobSpec, shape: ModelShape, workers: WorkerMemory[]): string | undefined {
  if (workers.length < minWorkers(spec)) return undefined;
  const fit = new Set(workersThatFit(spec, shape, workers).map((w) => w.id));
  if (fit.size >= minWorkers(spec)) return undefined;
  const tooSmall = workers.filter((w) => !fit.has(w.id)).sort((a, b) => b.memoryBytes - a.memoryBytes);
  const named = tooSmall
    .slice(0, 3)
    .map(
      (w) =>
        `${w.id} has ${formatBytes(w.memoryBytes)}${w.device && w.device !== "cpu" ? ` of ${w.device} memory` : ""}`,
    )
    .join(", ");
  const more = tooSmall.length > 3 ? ` (and ${tooSmall.length - 3} more too small)` : "";
  const count =
    minWorkers(spec) > 1
      ? `; ${minWorkers(spec)} workers must fit it, ${fit.size} of ${workers.length} registered do`
      : "";
  const need = describeNeed(estimateFor(spec, shape, tooSmall[0]!));
  return `the job does not fit its workers' memory: needs ${need}, ${named}${more}${count}`;
}
