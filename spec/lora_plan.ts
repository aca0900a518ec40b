// LoRA in a job: the adapters of a lora or hybrid job, and the step where a hybrid job switches to them.
import type { LoraSettings } from "../native/js/addon.js";
import type { JobSpec } from "./job_spec.js";
import { loraTargets } from "./training_spec.js";

const DEFAULT_FULL_FRACTION = 0.2;

/** The adapters of a lora or hybrid job (defaults filled in); undefined for full training. */
export function loraSettingsOf(spec: JobSpec): LoraSettings | undefined {
  if (spec.method === "full") return undefined;
  const l = spec.lora ?? { rank: 16, dropout: 0, targets: "all" as const, rslora: false };
  return {
    rank: l.rank,
    alpha: l.alpha ?? l.rank,
    dropout: l.dropout,
    targets: loraTargets({ ...l, alpha: l.alpha }),
    rslora: l.rslora,
    seed: spec.seed,
    baseBf16: (l.base_precision ?? (spec.method === "lora" ? "bf16" : "fp32")) === "bf16",
  };
}

/** Hybrid: the last full-parameter step (LoRA from the next one); 0 for other methods. */
export function hybridSwitchStep(spec: JobSpec, totalSteps: number): number {
  if (spec.method !== "hybrid") return 0;
  const fraction = spec.full_fraction ?? DEFAULT_FULL_FRACTION;
  const step = Math.round(fraction * totalSteps);
  if (step < 1 || step >= totalSteps)
    throw new Error(`full_fraction ${fraction} of ${totalSteps} steps leaves no full or no LoRA phase`);
  return step;
}
