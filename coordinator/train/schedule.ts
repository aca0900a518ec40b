// The learning-rate schedule: linear warmup from 0, then cosine or linear decay to min_lr (or constant).
export interface LrSchedule {
  lr: number;
  minLr: number;
  kind: "cosine" | "linear" | "constant";
  warmupSteps: number;
  totalSteps: number;
}

/** The learning rate of optimizer step `step` (1-based): step `warmupSteps` is the first at the peak. */
export function learningRate(s: LrSchedule, step: number): number {
  if (step <= s.warmupSteps) return (s.lr * step) / s.warmupSteps;
  if (s.kind === "constant") return s.lr;
  const decaySteps = Math.max(1, s.totalSteps - s.warmupSteps);
  const progress = Math.min(1, (step - s.warmupSteps) / decaySteps);
  if (s.kind === "linear") return s.lr - (s.lr - s.minLr) * progress;
  return s.minLr + (s.lr - s.minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** warmup_steps as given, or warmup_ratio of all steps (rounded), or none. */
export function warmupSteps(spec: { warmup_steps?: number; warmup_ratio?: number }, totalSteps: number): number {
  if (spec.warmup_steps !== undefined) return Math.min(spec.warmup_steps, totalSteps);
  if (spec.warmup_ratio !== undefined) return Math.round(spec.warmup_ratio * totalSteps);
  return 0;
}
