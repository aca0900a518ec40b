// `workers`: a fixed ring size, or `{min, max}` for an elastic job, whose ring grows at its next checkpoint when
// idle workers appear and shrinks when workers leave (re-formed from the checkpoint, no start counted). What
// a step trains on never depends on the ring's size (the global batch is fixed and the data order is a function
// of the seed and the step), so an elastic job's losses are a fixed-size run's.
import { z } from "zod";
import { SPEC_LIMITS } from "./size_limits.js";

const count = z.number().int().positive().max(SPEC_LIMITS.workers);

export const workersSchema = z
  .union([count, z.strictObject({ min: count, max: count })], {
    error: `expected number (a count of workers, 1 to ${SPEC_LIMITS.workers}) or {min, max} (an elastic ring)`,
  })
  .default(1)
  .describe("data-parallel workers: a count, or {min, max} for a ring that grows and shrinks with idle workers");

export type WorkersSpec = z.infer<typeof workersSchema>;

/** The ring sizes a job may run with. */
export function workerRange(workers: WorkersSpec): { min: number; max: number } {
  return typeof workers === "number" ? { min: workers, max: workers } : workers;
}

/** The fewest workers a job starts with, and what memory and batch checks plan for (each worker's largest share). */
export const minWorkers = (spec: { workers: WorkersSpec }): number => workerRange(spec.workers).min;

export function checkWorkersKeys(
  spec: {
    workers: WorkersSpec;
    global_batch_rows?: number;
    global_batch_tokens?: number;
    sequence_parallel: number;
  },
  ctx: z.RefinementCtx,
): void {
  if (typeof spec.workers !== "object") return;
  const { min, max } = spec.workers;
  if (min > max)
    ctx.addIssue({
      code: "custom",
      path: ["workers", "min"],
      message: `workers.min (${min}) exceeds workers.max (${max})`,
    });
  if (max > min && spec.global_batch_rows === undefined && spec.global_batch_tokens === undefined)
    ctx.addIssue({
      code: "custom",
      path: ["workers"],
      message:
        "an elastic job (workers: {min, max}) names its global batch (global_batch_rows or global_batch_tokens): " +
        "its rows per step must not follow the ring's size",
    });
  if (max > min && spec.sequence_parallel > 1)
    ctx.addIssue({
      code: "custom",
      path: ["workers"],
      message: `an elastic job (workers: {min, max}) runs without sequence_parallel (${spec.sequence_parallel}): its groups fix the ring's size`,
    });
}
