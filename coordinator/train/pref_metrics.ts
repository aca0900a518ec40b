// A preference step's metrics as metrics.jsonl keys: the means over the global batch's pairs (rewards of
// the chosen and rejected answers, their margin, the share of pairs with the chosen answer ahead, both
// log-probabilities) and the same per task_type; `prefix` "val_" for an evaluation's.
import type { PrefMetrics } from "../../proto/mod.js";

export const PREF_KEYS = [
  "rewards_chosen",
  "rewards_rejected",
  "margin",
  "accuracy",
  "logps_chosen",
  "logps_rejected",
] as const;

type PrefPart = Omit<PrefMetrics, "loss">;

function keysOf(m: PrefMetrics): PrefPart {
  const { loss: _loss, ...rest } = m;
  return rest;
}

export function prefLine(
  pref: { all: PrefMetrics; byTask: Record<string, PrefMetrics> } | undefined,
  prefix = "",
): Record<string, unknown> {
  if (!pref) return {};
  const out: Record<string, unknown> = {};
  const all = keysOf(pref.all);
  for (const k of [...PREF_KEYS, "pairs"] as const) out[prefix + k] = all[k];
  out[`${prefix}pref_by_task`] = Object.fromEntries(Object.entries(pref.byTask).map(([t, m]) => [t, m]));
  return out;
}
