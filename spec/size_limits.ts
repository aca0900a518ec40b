// Upper bounds on the sizes a job spec sets, checked by the schema at intake (the refusal names the key):
// far above any real job, far below what would make the coordinator allocate itself to death.
import { z } from "zod";
import { MAX_SEQ_LEN } from "./sequence_parallel.js";
export const SPEC_LIMITS = {
  /** tokens per packed row; a model's max_position_embeddings is checked on top of this */
  seq_len: MAX_SEQ_LEN,
  global_batch_rows: 1 << 16,
  global_batch_tokens: 1 << 26,
  micro_batch_rows: 1 << 12,
  max_steps: 10_000_000,
  epochs: 1000,
  workers: 4096,
  /** entries of `data`, and LLaMA-Factory names in `dataset` */
  data_entries: 4096,
  datasets: 1024,
  /** characters of a path (Linux's PATH_MAX), a task_type, a dataset name */
  path_chars: 4096,
  task_type_chars: 128,
  dataset_name_chars: 256,
  /** template_options: keys, characters of a key, characters of a string value */
  template_options: 64,
  template_option_key_chars: 64,
  template_option_value_chars: 4096,
  /** generation_eval.max_new_tokens; the model's context is checked on top of this at intake */
  max_new_tokens: MAX_SEQ_LEN,
} as const;

/** A path key's value: non-empty and at most PATH_MAX characters. */
export const pathString = () => z.string().min(1).max(SPEC_LIMITS.path_chars);
