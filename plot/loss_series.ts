// The loss curves of one run, read from its metrics.jsonl: train loss per step, validation loss per
// evaluation, and validation loss per task_type. The same lines feed the job record and the dashboard.
import { readFileSync } from "node:fs";
import path from "node:path";

export type Point = readonly [step: number, value: number];

export interface LossSeries {
  /** a name for legends: the run folder's name unless given */
  label: string;
  train: Point[];
  val: Point[];
  valByTask: Record<string, Point[]>;
  /** preference training: rewards_chosen, rewards_rejected, margin and accuracy per step (empty otherwise) */
  pref: Record<string, Point[]>;
  /** preference training: each task_type's accuracy per step (pref_by_task) */
  accuracyByTask: Record<string, Point[]>;
}

/** The preference metrics a plot draws, as metrics.jsonl names them. */
export const PREF_SERIES = ["rewards_chosen", "rewards_rejected", "margin", "accuracy"] as const;

const finite = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** Lines are objects with `step` and any of `loss`, `val_loss`, `val_loss_by_task`; others are skipped. */
export function lossSeriesOfLines(label: string, lines: readonly Record<string, unknown>[]): LossSeries {
  const series: LossSeries = { label, train: [], val: [], valByTask: {}, pref: {}, accuracyByTask: {} };
  for (const line of lines) {
    const step = line.step;
    if (!finite(step)) continue;
    if (finite(line.loss)) series.train.push([step, line.loss]);
    if (finite(line.val_loss)) series.val.push([step, line.val_loss]);
    if (finite(line.loss))
      for (const k of PREF_SERIES) if (finite(line[k])) (series.pref[k] ??= []).push([step, line[k] as number]);
    const prefByTask = line.pref_by_task;
    if (finite(line.loss) && prefByTask && typeof prefByTask === "object")
      for (const [task, m] of Object.entries(prefByTask as Record<string, { accuracy?: unknown }>))
        if (finite(m?.accuracy)) (series.accuracyByTask[task] ??= []).push([step, m.accuracy]);
    const byTask = line.val_loss_by_task;
    if (byTask && typeof byTask === "object")
      for (const [task, v] of Object.entries(byTask as Record<string, unknown>))
        if (finite(v)) (series.valByTask[task] ??= []).push([step, v]);
  }
  return series;
}

/** `runDir/metrics.jsonl` as curves; a missing file or a bad line is an error naming the file and line. */
export function readLossSeries(runDir: string, label = path.basename(path.resolve(runDir))): LossSeries {
  const file = path.join(runDir, "metrics.jsonl");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`${file}: cannot read the run's metrics (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  const lines = text.split("\n").flatMap((line, i) => {
    if (line.trim() === "") return [];
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      throw new Error(`${file}:${i + 1}: not a JSON line`);
    }
  });
  return lossSeriesOfLines(label, lines);
}

/**
 * LLaMA-Factory's smoothing weight for a curve of `n` points: near 0 for a few points (nothing to hide),
 * rising towards 0.9 for long runs.
 */
export function smoothingWeight(n: number): number {
  return 1.8 * (1 / (1 + Math.exp(-0.05 * n)) - 0.5);
}

/** Exponential moving average with a bias correction, as TensorBoard and LLaMA-Factory smooth loss curves. */
export function smooth(points: readonly Point[], weight = smoothingWeight(points.length)): Point[] {
  let avg = 0;
  return points.map(([step, v], i) => {
    avg = weight * avg + (1 - weight) * v;
    return [step, avg / (1 - Math.pow(weight, i + 1))] as const;
  });
}
