// What the data pipeline reads of a job spec, and which of its problems make `on_bad_record: fail` fail.
import type { JobSpec } from "../spec/job_spec.js";
import type { Problem } from "../text/records/problems.js";

export type DataSpec = Pick<
  JobSpec,
  | "model"
  | "tokenizer"
  | "template"
  | "data"
  | "val_size"
  | "seq_len"
  | "packing"
  | "train_on_prompt"
  | "last_turn_only"
  | "on_bad_record"
  | "overlong"
  | "seed"
  | "cache_dir"
  | "dedup"
> &
  Partial<Pick<JobSpec, "template_options" | "max_record_bytes" | "max_record_tokens">>;

/** Problems that make `on_bad_record: fail` fail: the record itself is broken, not just long or repeated. */
export function isBadRecord(p: Problem): boolean {
  return p.kind === "invalid" || p.kind === "template";
}
