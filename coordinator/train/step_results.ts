// The ring's replies to one training step or evaluation, combined into the job's numbers: the global
// batch's loss, the mean loss per task, and the proof that every rank holds the same weights.
import {
  meanLossByTask,
  mergePrefSums,
  mergeTaskSums,
  prefMetricsOf,
  type CommandReply,
  type PrefMetrics,
  type PrefSums,
  type TaskSums,
} from "../../proto/mod.js";

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
  /** preference training: the pairs' metrics, all and per task */
  pref?: { all: PrefMetrics; byTask: Record<string, PrefMetrics> };
}

/** The ring's preference sums merged into metrics; undefined when the replies carry none (SFT). */
function prefResult(replies: { pref_sums?: PrefSums }[]): StepResult["pref"] {
  if (replies.every((r) => r.pref_sums === undefined)) return undefined;
  const sums: PrefSums = {};
  for (const r of replies) mergePrefSums(sums, r.pref_sums);
  return prefMetricsOf(sums);
}

function taskSums(replies: { task_sums?: TaskSums }[]): TaskSums {
  const sums: TaskSums = {};
  for (const r of replies) mergeTaskSums(sums, r.task_sums);
  return sums;
}

function lossByTask(replies: { task_sums?: TaskSums }[]): Record<string, number> {
  return meanLossByTask(taskSums(replies));
}

/** `targets`: the global batch's target count (preference training: pairs), which every rank's loss was scaled by. */
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
    pref: prefResult(replies),
  };
}

export function combineEvalReplies(replies: CommandReply<"eval">[]): {
  loss: number;
  lossByTask: Record<string, number>;
  pref?: StepResult["pref"];
} {
  const targets = replies.reduce((s, r) => s + r.targets!, 0);
  return {
    loss: replies.reduce((s, r) => s + r.loss_sum!, 0) / targets,
    lossByTask: lossByTask(replies),
    pref: prefResult(replies),
  };
}
