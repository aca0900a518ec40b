// What a preference job's data pipeline reads from the job spec, and the pair counts it reports.
import type { JobSpec } from "../../spec/job_spec.js";

export type PairSpec = Pick<
  JobSpec,
  "model" | "tokenizer" | "template" | "data" | "val_size" | "seq_len" | "packing" | "on_bad_record" | "seed" | "dedup"
> &
  Partial<Pick<JobSpec, "template_options" | "max_record_bytes" | "max_record_tokens">>;

/** Pair counts of a split, per task_type too. */
export interface PairStats {
  train: number;
  val: number;
  perTask: Record<string, number>;
  /** mean positions of a chosen and of a rejected sequence (training pairs) */
  meanChosenLength: number;
  meanRejectedLength: number;
  meanPromptLength: number;
}
