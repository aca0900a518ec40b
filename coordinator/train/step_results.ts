// The ring's replies to one training step or evaluation, combined into the job's numbers: the global
// batch's loss, the mean loss per task, and the proof that every rank holds the same weights.
import { meanLossByTask, mergeTaskSums, type CommandReply, type TaskSums } from "../../proto/mod.js";

export interface StepResult {
  /** mean loss over the global batch's targets */
  loss: number;
  lossByTask: Record<string, number>;
  /** the target counts that weight lossByTask into loss */
  targetsByTask: Record<string, number>;
  gradNorm: number | undefined;
  checksum: string | undefined;
  /** the slowest rank's compute, and its wait for the last all-reduces */
  computeMs: number;
  commWaitMs: number;
}

function taskSums(replies: { task_sums?: TaskSums }[]): TaskSums {
  const sums: TaskSums = {};
  for (const r of replies) mergeTaskSums(sums, r.task_sums);
  return sums;
}

function lossByTask(replies: { task_sums?: TaskSums }[]): Record<string, number> {
  return meanLossByTask(taskSums(replies));
}

/** `targets`: the global batch's target count, which every rank's loss was scaled by. */
export function combineStepReplies(step: number, replies: CommandReply<"step">[], targets: number): StepResult {
  const sums = new Set(replies.map((r) => r.checksum));
  if (sums.size !== 1)
    throw new Error(
      `step ${step}: the workers' weights differ (checksums ${[...sums].join(", ")}): the ring is out of sync`,
    );
  const lossSum = replies.reduce((s, r) => s + r.loss_sum!, 0);
  return {
    loss: targets > 0 ? lossSum / targets : NaN,
    lossByTask: lossByTask(replies),
    targetsByTask: Object.fromEntries(Object.entries(taskSums(replies)).map(([task, [, n]]) => [task, n])),
    gradNorm: replies[0]!.grad_norm,
    checksum: replies[0]!.checksum,
    computeMs: Math.max(...replies.map((r) => r.compute_ms ?? 0)),
    commWaitMs: Math.max(...replies.map((r) => r.comm_wait_ms ?? 0)),
  };
}

export function combineEvalReplies(replies: CommandReply<"eval">[]): {
  loss: number;
  lossByTask: Record<string, number>;
} {
  const targets = replies.reduce((s, r) => s + r.targets!, 0);
  return { loss: replies.reduce((s, r) => s + r.loss_sum!, 0) / targets, lossByTask: lossByTask(replies) };
}
