// Per-task loss sums: each worker adds the per-token losses of its rows by task_type, the coordinator merges
// the workers' sums and reports the mean loss per task. Both ends use this one module.
import { z } from "zod";
import { IGNORE_INDEX } from "../native/js/addon.js";

/** Per task: [loss sum, target count]. */
export const TaskSums = z.record(z.string(), z.tuple([z.number(), z.number()]));
export type TaskSums = z.infer<typeof TaskSums>;

/** Where a target position has no task (token_task -1). */
export const NO_TASK = "(none)";

/** Adds each target position's loss to its task's sums; `tokenTask[t]` indexes `tasks` (-1: none). */
export function addTokenLosses(
  sums: TaskSums,
  tokenLosses: Float32Array,
  labels: Int32Array,
  tokenTask: Int32Array,
  tasks: readonly string[],
): void {
  for (let t = 0; t < tokenLosses.length; t++) {
    if (labels[t] === IGNORE_INDEX) continue;
    const k = tokenTask[t]!;
    const s = (sums[k >= 0 ? tasks[k]! : NO_TASK] ??= [0, 0]);
    s[0] += tokenLosses[t]!;
    s[1] += 1;
  }
}

/** Adds `from` into `into`, task by task. */
export function mergeTaskSums(into: TaskSums, from: TaskSums | undefined): void {
  for (const [task, [lossSum, targets]] of Object.entries(from ?? {})) {
    const s = (into[task] ??= [0, 0]);
    s[0] += lossSum;
    s[1] += targets;
  }
}

/** The mean loss per task (NaN for a task without targets). */
export function meanLossByTask(sums: TaskSums): Record<string, number> {
  return Object.fromEntries(Object.entries(sums).map(([task, [s, n]]) => [task, n > 0 ? s / n : NaN]));
}
