// Upper bounds on the sizes a job spec sets, checked by the schema at intake (the refusal names the key):
// far above any real job, far below what would make the coordinator allocate itself to death.
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
} as const;
