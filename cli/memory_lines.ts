// The memory estimate of a job spec as printed by `ringtune estimate`, `data check` and `submit`.
import { estimateJobMemory, formatEstimate, readModelShape } from "../spec/job_memory.js";
import type { JobSpec } from "../spec/job_spec.js";

/** A few lines; one line naming the reason when the model's config cannot be read. */
export function memoryLines(spec: JobSpec, threads?: number): string[] {
  try {
    return formatEstimate(estimateJobMemory(spec, readModelShape(spec), threads));
  } catch (err) {
    return [`memory per rank: not estimated: ${(err as Error).message}`];
  }
}
