// A job's memory estimate as the job record keeps it: bytes per rank, computed at intake from the model's
// shape and the spec, so `ringtune watch` and `submit --json` show what the job needs.
import { z } from "zod";

const Bytes = z.number().int().min(0);

export const MemoryEstimateRecord = z.object({
  per_rank_bytes: Bytes,
  params_bytes: Bytes,
  grads_bytes: Bytes,
  /** both AdamW moments */
  optimizer_bytes: Bytes,
  activations_bytes: Bytes,
  /** which phase the numbers are of: a hybrid job needs the larger of its full and LoRA phases */
  phase: z.enum(["full", "lora"]),
});
export type MemoryEstimateRecord = z.infer<typeof MemoryEstimateRecord>;
