// The preference-training keys of a job spec, with LLaMA-Factory's names and meanings: `stage: dpo` trains on
// pairs of a chosen and a rejected answer, `pref_loss` picks the objective (sigmoid is DPO; ipo; orpo and
// simpo need no reference model), `pref_beta` its temperature, `pref_ftx` an SFT loss on the chosen answer
// added with that weight, `dpo_label_smoothing` the conservative DPO of noisy labels, `simpo_gamma` SimPO's
// target margin. The reference of sigmoid and ipo is the base with the adapters off under method: lora, and
// the initial model's log-probabilities, computed once before training, under full and hybrid.
import { z } from "zod";
import { PREF_LOSSES, type PreferenceSettings, type PrefLoss } from "../proto/preference.js";

export const preferenceSpecShape = {
  /** sft: supervised on answers; dpo: preference pairs (chosen over rejected) */
  stage: z.enum(["sft", "dpo"]).default("sft"),
  /** stage dpo: sigmoid (DPO), ipo, orpo or simpo */
  pref_loss: z.enum(PREF_LOSSES).optional(),
  /** stage dpo: beta of the preference loss (DPO's KL weight; ORPO's odds-ratio weight) */
  pref_beta: z.number().positive().max(1000).optional(),
  /** stage dpo: weight of an SFT loss (mean NLL of the chosen answer) added to the preference loss */
  pref_ftx: z.number().nonnegative().max(1000).optional(),
  /** stage dpo, pref_loss sigmoid: probability that a pair's labels are flipped (cDPO), in [0, 0.5) */
  dpo_label_smoothing: z.number().min(0).lt(0.5).optional(),
  /** stage dpo, pref_loss simpo: the target reward margin */
  simpo_gamma: z.number().min(0).max(1000).optional(),
};

/** The preference settings a job trains with (the defaults filled in). */
export function preferenceSettings(spec: {
  pref_loss?: PrefLoss;
  pref_beta?: number;
  pref_ftx?: number;
  dpo_label_smoothing?: number;
  simpo_gamma?: number;
}): PreferenceSettings {
  return {
    loss: spec.pref_loss ?? "sigmoid",
    beta: spec.pref_beta ?? 0.1,
    ftx: spec.pref_ftx ?? 0,
    labelSmoothing: spec.dpo_label_smoothing ?? 0,
    simpoGamma: spec.simpo_gamma ?? 0.5,
  };
}

type PreferenceKeys = { stage: "sft" | "dpo"; method: string; sequence_parallel: number } & {
  [K in Exclude<keyof typeof preferenceSpecShape, "stage">]?: unknown;
} & { pref_loss?: PrefLoss };

/** Cross-key rules, reported like the schema's own issues (with the key as path). */
export function checkPreferenceKeys(spec: PreferenceKeys, ctx: z.RefinementCtx): void {
  const prefKeys = ["pref_loss", "pref_beta", "pref_ftx", "dpo_label_smoothing", "simpo_gamma"] as const;
  if (spec.stage !== "dpo") {
    for (const key of prefKeys)
      if (spec[key] !== undefined) ctx.addIssue({ code: "custom", path: [key], message: `${key} needs stage: dpo` });
    return;
  }
  const loss = spec.pref_loss ?? "sigmoid";
  if (spec.dpo_label_smoothing !== undefined && loss !== "sigmoid")
    ctx.addIssue({
      code: "custom",
      path: ["dpo_label_smoothing"],
      message: `dpo_label_smoothing is for pref_loss: sigmoid (not ${loss})`,
    });
  if (spec.simpo_gamma !== undefined && loss !== "simpo")
    ctx.addIssue({
      code: "custom",
      path: ["simpo_gamma"],
      message: `simpo_gamma is for pref_loss: simpo (not ${loss})`,
    });
  // A pair's log-probability is a sum over its answer's tokens; under sequence parallelism those tokens lie
  // on several ranks, and the per-pair loss would need their sums gathered first.
  if (spec.sequence_parallel > 1)
    ctx.addIssue({
      code: "custom",
      path: ["sequence_parallel"],
      message: "stage: dpo trains on whole pairs per rank: sequence_parallel must be 1",
    });
}
