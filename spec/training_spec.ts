// The training keys of a job spec (the cluster's part of the one job schema in job_spec.ts).
import { z } from "zod";
import { pathString, SPEC_LIMITS } from "./size_limits.js";
import { workersSchema } from "./workers_spec.js";

export const LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] as const;

export const loraSchema = z.strictObject({
  rank: z.number().int().positive().default(16),
  /** default: equal to rank, so the adapter's scale alpha/rank is 1 whatever the rank */
  alpha: z.number().positive().optional(),
  dropout: z.number().min(0).lt(1).default(0),
  /** module names, or "all" for every linear layer of the decoder */
  targets: z.union([z.literal("all"), z.array(z.enum(LORA_TARGETS)).min(1)]).default("all"),
  rslora: z.boolean().default(false),
  /**
   * precision of the frozen base on the workers: bf16 halves its memory (compute stays fp32, a layer at a
   * time). Default: bf16 for method lora, fp32 for hybrid (whose base trains in its first phase).
   */
  base_precision: z.enum(["bf16", "fp32"]).optional(),
});
export type LoraSpec = z.infer<typeof loraSchema>;

/** The module list a lora spec names. */
export function loraTargets(l: LoraSpec): string[] {
  return l.targets === "all" ? [...LORA_TARGETS] : [...new Set(l.targets)];
}

export const trainingSpecShape = {
  /** full: every weight; lora: adapters on a frozen base; hybrid: full for full_fraction of the steps, then LoRA */
  method: z.enum(["full", "lora", "hybrid"]).default("full"),
  lora: loraSchema.optional(),
  /** hybrid only: share of the steps trained with every weight before switching to LoRA */
  full_fraction: z.number().gt(0).lt(1).optional(),
  /** passes over the training rows; default 1 when max_steps is not given either */
  epochs: z.number().positive().max(SPEC_LIMITS.epochs).optional(),
  /** stop after this many optimizer steps (caps epochs when both are given) */
  max_steps: z.number().int().positive().max(SPEC_LIMITS.max_steps).optional(),
  /** tokens per optimizer step over all workers (rounded to whole rows of seq_len) */
  global_batch_tokens: z.number().int().positive().max(SPEC_LIMITS.global_batch_tokens).optional(),
  /** rows per optimizer step over all workers (instead of global_batch_tokens) */
  global_batch_rows: z.number().int().positive().max(SPEC_LIMITS.global_batch_rows).optional(),
  /** rows per forward/backward on one worker; gradients accumulate over micro-batches */
  micro_batch_rows: z.number().int().positive().max(SPEC_LIMITS.micro_batch_rows).default(4),
  lr: z.number().positive().default(1e-4),
  min_lr: z.number().nonnegative().default(0),
  /** share of all steps spent warming up linearly from 0 (about 1% per epoch is a common choice) */
  warmup_ratio: z.number().min(0).max(1).optional(),
  warmup_steps: z.number().int().nonnegative().optional(),
  schedule: z.enum(["cosine", "linear", "constant"]).default("cosine"),
  weight_decay: z.number().nonnegative().default(0),
  betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.999]),
  eps: z.number().positive().default(1e-8),
  /** global gradient-norm clipping; 0 turns it off */
  grad_clip: z.number().nonnegative().default(1),
  /** validation loss every N steps (and at the end); 0: only at the end */
  eval_every: z.number().int().nonnegative().default(0),
  /** checkpoint every N steps; 0: none but the final model */
  save_every: z.number().int().nonnegative().default(0),
  /** keep only the newest N checkpoints, deleting older ones as new ones are written; absent: keep all */
  keep_checkpoints: z.number().int().min(1).max(10_000).optional(),
  /** where checkpoints, the final model and metrics.jsonl go; default runs/<job id> beside the spec */
  output: pathString().optional(),
  /**
   * an output folder holding another job's files is refused unless this is true: then those files are
   * removed as a whole when the job starts (never mixed with the new ones)
   */
  overwrite_output: z.boolean().default(false),
  save_dtype: z.enum(["F32", "BF16"]).default("F32"),
  /**
   * compute precision on GPU workers (default bf16): bf16 compute copy over fp32 master weights, gradients and
   * AdamW moments; fp32 computes in fp32 throughout (the checking mode, compared with the CPU). CPU workers
   * compute in fp32 either way.
   */
  precision: z.enum(["bf16", "fp32"]).optional(),
  /** a checkpoint folder (runs/ID/checkpoints/step-N) to continue from: weights, AdamW state, data position */
  resume_from: pathString().optional(),
  /** data-parallel workers: a count, or {min, max} for an elastic ring (workers_spec.ts) */
  workers: workersSchema,
  /**
   * workers per sequence-parallel group: each row is cut into 2N chunks spread over N workers (ring
   * attention between them); the ring forms workers / N data-parallel groups
   */
  sequence_parallel: z.number().int().positive().default(1),
  /**
   * ZeRO stage: 1 shards the AdamW moments over the workers (gradients reduce-scattered, each worker
   * updates its shard, weights all-gathered); checkpoints still hold the whole state. 0: each holds them all.
   */
  zero: z.union([z.literal(0), z.literal(1)]).default(0),
  /** keep only each layer's input in the forward and recompute the layer in the backward: less memory */
  activation_checkpointing: z.boolean().default(false),
  /** data-plane transport of the gradient all-reduce; default: the faster one measured (tcp) */
  transport: z.enum(["tcp", "nats"]).optional(),
  /**
   * seconds a ring neighbour may send nothing (during an all-reduce or sequence-parallel attention) or take to
   * join the ring before the step fails and the ring is formed again from the last checkpoint
   */
  ring_timeout_s: z.number().positive().max(3600).default(30),
  /** compare a checksum of every worker's weights every N steps (they must stay identical); 0: never */
  checksum_every: z.number().int().nonnegative().default(10),
  /** generation on held-out prompts before and after training: exact match and JSON validity per task_type */
  generation_eval: z
    .strictObject({
      path: pathString(),
      format: z.enum(["auto", "alpaca", "sharegpt", "messages"]).default("auto"),
      max_new_tokens: z.number().int().positive().max(SPEC_LIMITS.max_new_tokens).default(128),
      limit: z.number().int().positive().optional(),
    })
    .optional(),
};

/** Cross-key rules, reported like the schema's own issues (with the key as path). */
export function checkTrainingKeys(
  spec: {
    warmup_ratio?: number;
    warmup_steps?: number;
    global_batch_tokens?: number;
    global_batch_rows?: number;
    min_lr: number;
    lr: number;
    method: string;
    lora?: unknown;
    full_fraction?: number;
    model: { adapter?: string };
  },
  ctx: z.RefinementCtx,
): void {
  if (spec.model.adapter !== undefined && spec.method !== "lora")
    ctx.addIssue({ code: "custom", path: ["model", "adapter"], message: "continuing an adapter needs method: lora" });
  if (spec.method === "full" && spec.lora !== undefined)
    ctx.addIssue({ code: "custom", path: ["lora"], message: "lora settings need method: lora or method: hybrid" });
  if (spec.method !== "hybrid" && spec.full_fraction !== undefined)
    ctx.addIssue({ code: "custom", path: ["full_fraction"], message: "full_fraction is for method: hybrid" });
  if (spec.warmup_ratio !== undefined && spec.warmup_steps !== undefined)
    ctx.addIssue({ code: "custom", path: ["warmup_steps"], message: "give warmup_ratio or warmup_steps, not both" });
  if (spec.global_batch_tokens !== undefined && spec.global_batch_rows !== undefined)
    ctx.addIssue({
      code: "custom",
      path: ["global_batch_rows"],
      message: "give global_batch_tokens or global_batch_rows, not both",
    });
  if (spec.min_lr > spec.lr)
    ctx.addIssue({ code: "custom", path: ["min_lr"], message: `min_lr (${spec.min_lr}) exceeds lr (${spec.lr})` });
}
