// Preference training on the wire: the settings a job's workers train with (JobAssign), and the per-task sums
// each worker returns with a step or an evaluation, merged by the coordinator into the job's metrics.
import { z } from "zod";

export const PREF_LOSSES = ["sigmoid", "ipo", "orpo", "simpo"] as const;
export type PrefLoss = (typeof PREF_LOSSES)[number];

/** A job's preference loss, LLaMA-Factory's keys renamed once (pref_loss -> loss, pref_beta -> beta, ...). */
export const PreferenceSettings = z.object({
  loss: z.enum(PREF_LOSSES),
  beta: z.number().positive(),
  ftx: z.number().nonnegative(),
  labelSmoothing: z.number().min(0).lt(0.5),
  simpoGamma: z.number().min(0),
});
export type PreferenceSettings = z.infer<typeof PreferenceSettings>;

/**
 * Summed log-probabilities of pairs' answers, two per pair (chosen, then rejected), pairs in the order of a
 * batch's rows and, within a row, of their segments. The bound keeps a message's array from allocating
 * more than a batch could hold.
 */
export const PairLogps = z.array(z.number()).max(1 << 22);

/** Whether a loss compares the policy with a reference model (ORPO and SimPO do not). */
export function needsReference(loss: PrefLoss): boolean {
  return loss === "sigmoid" || loss === "ipo";
}

/**
 * Per task: sums over its pairs of [pairs, loss, chosen reward, rejected reward, accurate pairs (chosen reward
 * above rejected), chosen log-prob, rejected log-prob].
 */
export const PrefSums = z.record(z.string(), z.array(z.number()).length(7));
export type PrefSums = z.infer<typeof PrefSums>;

export interface PairOutcome {
  loss: number;
  rewardChosen: number;
  rewardRejected: number;
  logpChosen: number;
  logpRejected: number;
}

export function addPair(sums: PrefSums, task: string, p: PairOutcome): void {
  const s = (sums[task] ??= [0, 0, 0, 0, 0, 0, 0]);
  s[0]! += 1;
  s[1]! += p.loss;
  s[2]! += p.rewardChosen;
  s[3]! += p.rewardRejected;
  s[4]! += p.rewardChosen > p.rewardRejected ? 1 : 0;
  s[5]! += p.logpChosen;
  s[6]! += p.logpRejected;
}

export function mergePrefSums(into: PrefSums, from: PrefSums | undefined): void {
  for (const [task, s] of Object.entries(from ?? {})) {
    const t = (into[task] ??= [0, 0, 0, 0, 0, 0, 0]);
    for (let i = 0; i < 7; i++) t[i]! += s[i]!;
  }
}

/** The metrics of a set of pairs: means over the pairs (margin = chosen - rejected reward). */
export interface PrefMetrics {
  pairs: number;
  loss: number;
  rewards_chosen: number;
  rewards_rejected: number;
  margin: number;
  accuracy: number;
  logps_chosen: number;
  logps_rejected: number;
}

export function prefMetrics(s: readonly number[]): PrefMetrics {
  const n = s[0]!;
  const mean = (i: number) => (n > 0 ? s[i]! / n : NaN);
  return {
    pairs: n,
    loss: mean(1),
    rewards_chosen: mean(2),
    rewards_rejected: mean(3),
    margin: mean(2) - mean(3),
    accuracy: mean(4),
    logps_chosen: mean(5),
    logps_rejected: mean(6),
  };
}

/** All tasks together, and each task on its own. */
export function prefMetricsOf(sums: PrefSums): { all: PrefMetrics; byTask: Record<string, PrefMetrics> } {
  const total = [0, 0, 0, 0, 0, 0, 0];
  for (const s of Object.values(sums)) for (let i = 0; i < 7; i++) total[i]! += s[i]!;
  return {
    all: prefMetrics(total),
    byTask: Object.fromEntries(Object.entries(sums).map(([task, s]) => [task, prefMetrics(s)])),
  };
}
