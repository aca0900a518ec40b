// What one rank of a job holds in memory, computed from the model's shape and the job's settings alone, so
// the coordinator can refuse a job that cannot fit before any worker allocates anything. Pure arithmetic:
// no native addon (the coordinator may run without one).
//
// The sizes mirror the native core's buffers: the parameter table (native/src/param_table.cpp), the LoRA
// table (lora.cpp), and every buffer an Activations of one (rows, seq_len) shape allocates
// (activations.cpp, plus the head's logits or chunk buffer that model.cpp's head() adds on first use).
// Training computes in fp32, so every buffer but a LoRA job's frozen base is 4 bytes an element. On a GPU
// (and its emulator) a bf16 job also holds a bf16 compute copy of what trains, beside the fp32 master weights.
import type { NativeModelConfig } from "../native/js/addon.js";

/** The shape fields of a model config that sizes depend on (a type only: the addon is never loaded here). */
export type ModelShape = Pick<
  NativeModelConfig,
  | "vocabSize"
  | "hiddenSize"
  | "intermediateSize"
  | "numLayers"
  | "numHeads"
  | "numKvHeads"
  | "headDim"
  | "tieWordEmbeddings"
  | "qkvBias"
  | "oBias"
  | "mlpBias"
>;

export type TrainingMethod = "full" | "lora" | "hybrid";
export type BasePrecision = "bf16" | "fp32";

export interface LoraShape {
  rank: number;
  /** module names among q_proj k_proj v_proj o_proj gate_proj up_proj down_proj */
  targets: string[];
  /** with dropout the adapter keeps its own copy of its input (the mask is drawn again in the backward) */
  dropout: number;
  /** storage of the frozen base under LoRA: bf16 (2 bytes a weight) unless fp32 is asked for */
  basePrecision: BasePrecision;
}

/**
 * How state is split over ranks. Each count divides what it shards; 1 everywhere is plain data parallelism
 * (every rank holds everything). ZeRO stage 1 sets optimizerShards, stage 2 also gradientShards, stage 3
 * also parameterShards; sequence parallelism cuts each row into sequenceShards pieces, one per rank.
 */
export interface Sharding {
  optimizerShards: number;
  gradientShards: number;
  parameterShards: number;
  sequenceShards: number;
}

export const NO_SHARDING: Sharding = { optimizerShards: 1, gradientShards: 1, parameterShards: 1, sequenceShards: 1 };

export interface EstimateInputs {
  method: TrainingMethod;
  /** adapters of a lora or hybrid job */
  lora?: LoraShape;
  seqLen: number;
  /**
   * Rows of each distinct micro-batch shape one rank runs (e.g. [4, 2] when a step's 6 rows go in
   * micro-batches of 4): the core keeps one set of activations per shape.
   */
  microBatchRows: number[];
  /** the job computes a validation loss: a forward without backward adds the chunked head's buffer */
  evaluates: boolean;
  /** worker threads: each has its own attention scratch */
  threads: number;
  sharding?: Partial<Sharding>;
  /**
   * Activation checkpointing: each layer keeps only its input; the rest of one layer's activations (its
   * LoRA buffers too) exists once, refilled by the recompute before each layer's backward.
   */
  activationCheckpointing?: boolean;
  /**
   * Where the rank computes: on a GPU (or the CUDA emulator) with precision bf16 the trainable weights also
   * exist as a bf16 compute copy beside their fp32 master copy; the CPU computes in fp32 from the master copy.
   */
  device?: "cpu" | "gpu";
  /** the job's compute precision on a GPU (default bf16); ignored on the CPU */
  precision?: "bf16" | "fp32";
}

/** Activation bytes by kind. */
export interface ActivationBytes {
  /** what each layer's forward keeps for the backward, and the shared backward scratch */
  layers: number;
  /** the LM head: all logits at once (full training) and/or the chunked head's buffer */
  head: number;
  /** the adapters' inputs and backward scratch */
  lora: number;
  /** per-thread attention tiles */
  attention: number;
  /** what activation checkpointing avoids keeping (0 without it); not part of the other parts */
  checkpointingSaved: number;
  /** a bf16 base's fp32 staging: one layer's weights, the final norm and a tile of the LM head */
  staging: number;
}

export interface PhaseEstimate {
  phase: "full" | "lora";
  /** bytes per rank */
  params: number;
  grads: number;
  /** both AdamW moments */
  optimizer: number;
  activations: number;
  /** the bf16 compute copy of the trainable weights on a GPU in precision bf16; 0 otherwise */
  computeCopy: number;
  total: number;
  activationParts: ActivationBytes;
  /** element counts: every base weight, and what trains (adapters under LoRA) */
  baseParams: number;
  trainableParams: number;
  /** ranks the AdamW moments are sharded over (ZeRO-1); 1 when every rank holds them all */
  optimizerShards: number;
}

export interface MemoryEstimate extends PhaseEstimate {
  method: TrainingMethod;
  /** both phases of a hybrid job (the estimate is the larger); one phase otherwise */
  phases: PhaseEstimate[];
}

const FP32 = 4;
const BF16 = 2;
/** positions per chunk of the LM head when the logits are not kept (kHeadChunk in activations.h) */
export const HEAD_CHUNK = 128;
/** query rows per attention tile (kAttentionTile in ops/attention.h) */
const ATTENTION_TILE = 128;

const LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] as const;

/** (in, out) features of a LoRA target's linear layer. */
function targetShape(m: ModelShape, target: string): [number, number] {
  const C = m.hiddenSize,
    I = m.intermediateSize,
    Q = m.numHeads * m.headDim,
    KV = m.numKvHeads * m.headDim;
  switch (target) {
    case "q_proj":
      return [C, Q];
    case "k_proj":
    case "v_proj":
      return [C, KV];
    case "o_proj":
      return [Q, C];
    case "gate_proj":
    case "up_proj":
      return [C, I];
    case "down_proj":
      return [I, C];
    default:
      throw new Error(`lora.targets: unknown module '${target}' (${LORA_TARGETS.join(" ")})`);
  }
}

/** Elements of the base model, as the native parameter table lays them out. */
export function baseParamCount(m: ModelShape): number {
  const C = m.hiddenSize,
    I = m.intermediateSize,
    Q = m.numHeads * m.headDim,
    KV = m.numKvHeads * m.headDim;
  const perLayer =
    2 * C + // input and post-attention norms
    Q * C +
    2 * KV * C +
    C * Q + // q, k, v, o
    3 * I * C + // gate, up, down
    (m.qkvBias ? Q + 2 * KV : 0) +
    (m.oBias ? C : 0) +
    (m.mlpBias ? 2 * I + C : 0);
  const embeddings = m.vocabSize * C * (m.tieWordEmbeddings ? 1 : 2);
  return embeddings + m.numLayers * perLayer + C; // + final norm
}

/** Elements of the adapters: A [r, in] and B [out, r] per target per layer. */
export function loraParamCount(m: ModelShape, lora: Pick<LoraShape, "rank" | "targets">): number {
  let perLayer = 0;
  for (const t of new Set(lora.targets)) {
    const [inF, outF] = targetShape(m, t);
    perLayer += lora.rank * inF + outF * lora.rank;
  }
  return m.numLayers * perLayer;
}

/** Activation bytes of one (rows, positions) shape: one Activations of the native core. */
function activationBytes(
  m: ModelShape,
  rows: number,
  positions: number,
  training: "full" | "lora",
  lora: LoraShape | undefined,
  evaluates: boolean,
  threads: number,
  checkpointed: boolean,
): ActivationBytes {
  const N = rows * positions;
  const C = m.hiddenSize,
    I = m.intermediateSize,
    V = m.vocabSize,
    H = m.numHeads,
    Q = m.numHeads * m.headDim,
    KV = m.numKvHeads * m.headDim;
  // kept per layer: res_in (C), and its internals: res_mid (C); rstd1, rstd2 (1); q, att (Q); k, v (KV);
  // lse (H); gate, up (I). Checkpointed, the internals exist once (the recompute slot), not per layer.
  const internals = N * (C + 2 + 2 * Q + 2 * KV + H + 2 * I);
  const internalCopies = checkpointed ? 1 : m.numLayers;
  const kept = m.numLayers * N * C + internalCopies * internals;
  // shared: res_out, lnf, ln, dres, dln, dtmp (C); rstdf, losses (1); dq, datt (Q); dk, dv (KV); h, dgate, dup (I)
  const shared = N * (6 * C + 2 + 2 * Q + 2 * KV + 3 * I);
  // A trainable head takes all logits at once (its weight gradient is one GEMM over every position); a
  // frozen head, and any forward without backward, goes through one chunk of positions at a time.
  const allLogits = training === "full" ? N * V : 0;
  const chunked = training === "lora" || evaluates ? HEAD_CHUNK * V : 0;
  let loraFloats = 0;
  let loraPerLayer = 0; // bytes of one layer's adapter buffers, for the saving
  if (training === "lora" && lora) {
    let widest = 0;
    for (const t of new Set(lora.targets)) {
      const [inF] = targetShape(m, t);
      widest = Math.max(widest, inF);
      loraFloats += internalCopies * N * lora.rank; // u = dropout(x) A^T
      loraPerLayer += N * lora.rank * FP32;
      if (lora.dropout > 0) {
        loraFloats += internalCopies * N * inF; // dropout(x)
        loraPerLayer += N * inF * FP32;
      }
    }
    loraFloats += N * lora.rank + (lora.dropout > 0 ? N * widest : 0); // backward scratch
  }
  return {
    layers: (kept + shared) * FP32,
    head: (allLogits + chunked) * FP32,
    lora: loraFloats * FP32,
    attention: threads * 2 * ATTENTION_TILE * positions * FP32, // S/P and dP tiles per thread
    checkpointingSaved: checkpointed ? (m.numLayers - 1) * (internals * FP32 + loraPerLayer) : 0,
    staging: 0, // once per model, not per micro-batch shape: added by phaseEstimate
  };
}

function sumParts(p: ActivationBytes): number {
  return p.layers + p.head + p.lora + p.attention + p.staging;
}

/** vocabulary rows of a bf16 head widened at a time (kHeadTile in model.h) */
const HEAD_TILE = 4096;

/** A bf16 base is widened to fp32 a layer (and a tile of the head) at a time, into buffers kept for reuse. */
function bf16StagingBytes(m: ModelShape): number {
  const C = m.hiddenSize;
  const embeddings = m.vocabSize * C * (m.tieWordEmbeddings ? 1 : 2);
  const layer = (baseParamCount(m) - embeddings - C) / m.numLayers;
  return (layer + C + Math.min(HEAD_TILE, m.vocabSize) * C) * FP32;
}

function phaseEstimate(m: ModelShape, inputs: EstimateInputs, phase: "full" | "lora", s: Sharding): PhaseEstimate {
  const base = baseParamCount(m);
  const lora = phase === "lora" ? inputs.lora : undefined;
  if (phase === "lora" && !lora) throw new Error("a LoRA estimate needs the adapters' rank and targets");
  const adapters = lora ? loraParamCount(m, lora) : 0;
  const trainable = lora ? adapters : base;
  const baseBytes = lora && lora.basePrecision === "bf16" ? BF16 : FP32;
  const positions = Math.ceil(inputs.seqLen / s.sequenceShards);
  const parts: ActivationBytes = {
    layers: 0,
    head: 0,
    lora: 0,
    attention: 0,
    checkpointingSaved: 0,
    staging: baseBytes === BF16 ? bf16StagingBytes(m) : 0,
  };
  for (const rows of new Set(inputs.microBatchRows)) {
    const checkpointed = inputs.activationCheckpointing ?? false;
    const a = activationBytes(m, rows, positions, phase, lora, inputs.evaluates, inputs.threads, checkpointed);
    parts.layers += a.layers;
    parts.head += a.head;
    parts.lora += a.lora;
    parts.attention += a.attention;
    parts.checkpointingSaved += a.checkpointingSaved;
  }
  const params = Math.ceil((base * baseBytes) / s.parameterShards) + adapters * FP32;
  const grads = Math.ceil((trainable * FP32) / s.gradientShards);
  const optimizer = Math.ceil((2 * trainable * FP32) / s.optimizerShards);
  const activations = sumParts(parts);
  // A frozen bf16 base is its own compute copy; what trains (the whole model, or the adapters) gets one, and so
  // does a frozen base kept in fp32.
  const bf16Compute = inputs.device === "gpu" && (inputs.precision ?? "bf16") === "bf16";
  const frozenFp32Base = lora && baseBytes === FP32 ? base * BF16 : 0;
  const computeCopy = bf16Compute ? Math.ceil((trainable * BF16) / (lora ? 1 : s.parameterShards)) + frozenFp32Base : 0;
  return {
    phase,
    params,
    grads,
    optimizer,
    activations,
    computeCopy,
    total: params + grads + optimizer + activations + computeCopy,
    activationParts: parts,
    baseParams: base,
    trainableParams: trainable,
    optimizerShards: s.optimizerShards,
  };
}

function checkInputs(inputs: EstimateInputs, s: Sharding): void {
  const positive = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new Error(`memory estimate: ${name} must be a positive integer, got ${v}`);
  };
  positive("seq_len", inputs.seqLen);
  positive("threads", inputs.threads);
  if (inputs.microBatchRows.length === 0) throw new Error("memory estimate: no micro-batch shape given");
  inputs.microBatchRows.forEach((r) => positive("micro_batch_rows", r));
  for (const [k, v] of Object.entries(s)) positive(k, v);
  if (inputs.lora) positive("lora.rank", inputs.lora.rank);
}

/** Per-rank bytes of a job; a hybrid job needs the larger of its full and LoRA phases. */
export function estimateMemory(model: ModelShape, inputs: EstimateInputs): MemoryEstimate {
  const s: Sharding = { ...NO_SHARDING, ...inputs.sharding };
  checkInputs(inputs, s);
  const phases =
    inputs.method === "full"
      ? [phaseEstimate(model, inputs, "full", s)]
      : inputs.method === "lora"
        ? [phaseEstimate(model, inputs, "lora", s)]
        : [phaseEstimate(model, inputs, "full", s), phaseEstimate(model, inputs, "lora", s)];
  const largest = phases.reduce((a, b) => (b.total > a.total ? b : a));
  return { ...largest, method: inputs.method, phases };
}
