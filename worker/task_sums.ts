// Per-task loss sums of one forward: the channel losses the seed's notes ask a trainer to report.
import type { TaskSums } from "./trainer.js";

export function addTaskSums(
  sums: TaskSums,
  tokenLosses: Float32Array,
  labels: Int32Array,
  tokenTask: Int32Array,
  tasks: readonly string[],
): void {
  for (let t = 0; t < tokenLosses.length; t++) {
    if (labels[t] === -100) continue;
    const k = tokenTask[t]!;
    const name = k >= 0 ? tasks[k]! : "(none)";
    const s = (sums[name] ??= [0, 0]);
    s[0] += tokenLosses[t]!;
    s[1] += 1;
  }
}
