// The coordinator's commands to a worker during a job, and the replies. Token arrays travel as Int32Array.
//
// Naming rule: a wire field keeps the job spec's snake_case name (grad_clip, micro_batch_rows, seq_len);
// the TypeScript on either side uses camelCase and renames a field once, where it builds or reads the
// message. The native core's own names (AdamWOptions.maxGradNorm for grad_clip) are that one rename.
import { z } from "zod";
import { defineMessage } from "./codec.js";
import { TransportKind } from "./messages.js";
import { SubjectToken } from "./subjects.js";
import { TaskSums } from "./task_sums.js";
import { PairLogps, PreferenceSettings, PrefSums } from "./preference.js";
import { I32, TokenBatch } from "./token_batch.js";

const Ok = { ok: z.boolean(), error: z.string().optional() };

/** Where the worker gets its weights: an HF folder, a random init from a config, and/or a checkpoint. */
export const ModelSource = z.object({
  path: z.string().optional(),
  init: z.object({ config: z.string(), seed: z.number().int() }).optional(),
  /** a checkpoint folder (weights + AdamW state); overrides path/init for the weights */
  resume: z.string().optional(),
  /** a PEFT adapter to put on the base and continue training */
  adapter: z.string().optional(),
});

export const OptimizerSettings = z.object({
  beta1: z.number(),
  beta2: z.number(),
  eps: z.number(),
  weight_decay: z.number(),
  /** global gradient-norm clipping (the native AdamWOptions.maxGradNorm); <= 0: off */
  grad_clip: z.number(),
  /** ZeRO stage: 1 shards the AdamW moments over the ring's ranks; absent or 0: every rank holds them all */
  zero: z.number().int().min(0).max(1).optional(),
  /**
   * the ring mixes devices (CPU and GPU ranks): every rank applies AdamW with the host's arithmetic, so the
   * weights stay the same bits on every rank (a GPU's fused multiply-adds and reduction orders would differ in
   * the last bits) and the periodic checksum compares them exactly
   */
  host_update: z.boolean().optional(),
});

/** LoRA adapters as the native core takes them (LoraSettings in native/js/addon.ts). */
export const LoraSettingsWire = z.object({
  rank: z.number().int().positive(),
  alpha: z.number().positive(),
  dropout: z.number().min(0).lt(1),
  targets: z.array(z.string()).min(1),
  rslora: z.boolean(),
  seed: z.number().int(),
  /** keep the frozen base in bf16 on the worker */
  baseBf16: z.boolean().optional(),
});

/** An NCCL unique id (128 bytes) as it travels: sealed with the ring's secret (worker/allreduce/nccl_id.ts). */
const SealedNcclId = z.instanceof(Uint8Array).refine((b) => b.length <= 512, "at most 512 bytes");

export const JobAssign = defineMessage("JobAssign", {
  job: SubjectToken,
  ring: SubjectToken,
  rank: z.number().int().min(0),
  size: z.number().int().min(1),
  transport: TransportKind,
  /** the ring's secret: its TCP edges accept only peers that prove they hold it */
  ring_secret: z
    .instanceof(Uint8Array)
    .refine((b) => b.length >= 16 && b.length <= 64, "16 to 64 bytes")
    .optional(),
  model: ModelSource,
  optimizer: OptimizerSettings,
  /** method lora: adapters from the start (a resumed checkpoint brings its own) */
  lora: LoraSettingsWire.optional(),
  /** workers per sequence-parallel group (ranks g*N..g*N+N-1 form group g); absent: 1 */
  sequence_parallel: z.number().int().min(1).optional(),
  /** keep only each layer's input in the forward and recompute the layer in the backward */
  activation_checkpointing: z.boolean().optional(),
  /** the job spec's precision: how a GPU rank computes (absent: bf16); a CPU rank computes in fp32 */
  precision: z.enum(["bf16", "fp32"]).optional(),
  /** how long a ring neighbour may be silent, or take to join, before the wait fails; absent: 30 s */
  ring_timeout_ms: z.number().int().min(1).optional(),
  /** the worker id of each rank, to name a silent neighbour in errors */
  ring_workers: z.array(z.string().max(256)).max(4096).optional(),
  /** stage dpo: batches hold preference pairs, trained with this loss; absent: SFT */
  preference: PreferenceSettings.optional(),
  /**
   * An all-GPU ring's NCCL data plane: the epoch's NCCL unique id, made by rank 0 and sealed with ring_secret
   * (worker/allreduce/nccl_id.ts). Absent: gradients go through host staging over the ring's transport.
   */
  nccl_id: SealedNcclId.optional(),
  /**
   * sequence_parallel > 1, and every rank of this rank's group computes on a CUDA device with NCCL: the
   * group's NCCL unique id, made by the group's first rank and sealed with ring_secret for the group's ring id
   * (proto/sequence_group.ts), over which the group's attention blocks move by send/recv. Absent: the group's
   * TCP link carries them.
   */
  sequence_nccl_id: SealedNcclId.optional(),
});
export const JobAssignReply = defineMessage("JobAssignReply", {
  ...Ok,
  num_params: z.number().int().optional(),
  step: z.number().int().optional(), // the optimizer step of the loaded state (resume)
});

/**
 * Before a ring's assignments: can this worker take part in an NCCL data plane? The ring's first rank
 * (create_nccl_id) also makes the epoch's unique id and returns it sealed with ring_secret; a sequence-parallel
 * group's first rank does the same for its group (sequence_group_ring).
 */
export const DataPlaneProbe = defineMessage("DataPlaneProbe", {
  job: SubjectToken,
  ring: SubjectToken,
  create_nccl_id: z.boolean(),
  /**
   * This worker is the first rank of a sequence-parallel group whose ranks all compute on CUDA devices: it
   * also makes the group's unique id, sealed with ring_secret for this (the group's) ring id.
   */
  sequence_group_ring: SubjectToken.optional(),
  ring_secret: z
    .instanceof(Uint8Array)
    .refine((b) => b.length >= 16 && b.length <= 64, "16 to 64 bytes")
    .optional(),
});
export const DataPlaneProbeReply = defineMessage("DataPlaneProbeReply", {
  ...Ok,
  nccl: z.boolean().optional(),
  /** why not, when nccl is false */
  reason: z.string().max(2000).optional(),
  nccl_id: SealedNcclId.optional(),
  /** the sequence-parallel group's unique id, when sequence_group_ring asked for it */
  sequence_nccl_id: SealedNcclId.optional(),
});

export const TrainStep = defineMessage("TrainStep", {
  job: SubjectToken,
  step: z.number().int().min(1),
  lr: z.number(),
  /** 1 / target tokens (preference training: pairs) of the whole global batch: N workers give one worker's update */
  loss_scale: z.number(),
  micro_batch_rows: z.number().int().min(1),
  /** this rank's share of the step's rows */
  batch: TokenBatch,
  /** ask for a checksum of the weights after the update */
  checksum: z.boolean(),
  /** hybrid: freeze the base and switch to LoRA before this step */
  enable_lora: LoraSettingsWire.optional(),
  /** preference training without adapters to switch off: the reference's log-probabilities of the batch's pairs */
  ref_logps: PairLogps.optional(),
});

export const TrainStepReply = defineMessage("TrainStepReply", {
  ...Ok,
  loss_sum: z.number().optional(),
  targets: z.number().optional(),
  task_sums: TaskSums.optional(),
  /** preference training: the pairs' metrics by task (loss_sum and targets are then the pairs') */
  pref_sums: PrefSums.optional(),
  grad_norm: z.number().optional(),
  checksum: z.string().optional(),
  compute_ms: z.number().optional(),
  comm_wait_ms: z.number().optional(),
});

export const EvalStep = defineMessage("EvalStep", {
  job: SubjectToken,
  batch: TokenBatch,
  micro_batch_rows: z.number().int().min(1),
  /** as TrainStep's */
  ref_logps: PairLogps.optional(),
  /** preference training: answer with the model's own log-probabilities of the batch's pairs (the reference pass) */
  pair_logps: z.boolean().optional(),
});
export const EvalStepReply = defineMessage("EvalStepReply", {
  ...Ok,
  loss_sum: z.number().optional(),
  targets: z.number().optional(),
  task_sums: TaskSums.optional(),
  pref_sums: PrefSums.optional(),
  /** asked for with pair_logps: the log-probabilities of the batch's pairs */
  pair_logps: PairLogps.optional(),
});

export const Generate = defineMessage("Generate", {
  job: SubjectToken,
  prompts: z.array(I32),
  max_new: z.number().int().min(0),
  eos_ids: I32,
});
export const GenerateReply = defineMessage("GenerateReply", { ...Ok, outputs: z.array(I32).optional() });

/**
 * Rank 0 writes: "model" the (base) weights in HF format, plus the adapter in dir/adapter when LoRA is on
 * and the AdamW state when with_optimizer (a checkpoint); "adapter" a PEFT adapter folder; "merged" base
 * plus adapter as one HF model (last: merging changes the weights in memory).
 */
export const SaveModel = defineMessage("SaveModel", {
  job: SubjectToken,
  dir: z.string(),
  what: z.enum(["model", "adapter", "merged"]),
  dtype: z.enum(["F32", "BF16"]),
  with_optimizer: z.boolean(),
  /** adapter_config.json's base_model_name_or_path */
  base_model: z.string().optional(),
});
export const SaveModelReply = defineMessage("SaveModelReply", Ok);

export const JobRelease = defineMessage("JobRelease", { job: SubjectToken });
export const JobReleaseReply = defineMessage("JobReleaseReply", Ok);
