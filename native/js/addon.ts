// The typed face of the native addon (build/native/ringtune_native.node). Everything else in TypeScript
// reaches native code through this file. Long calls return Promises and run off the main thread;
// typed arrays are passed and returned without copies (views of native memory where noted).
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

/** The model's shape, as the native core wants it (hf_config.ts derives it from config.json). */
export interface NativeModelConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean;
  qkvBias: boolean; // bias on q/k/v projections (Qwen2; Llama with attention_bias)
  oBias: boolean; // bias on o_proj (Llama with attention_bias)
  mlpBias: boolean; // bias on gate/up/down (Llama with mlp_bias)
  /** Llama 3 frequency scaling (rope_type "llama3"); null for plain RoPE. */
  ropeScaling: null | {
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositionEmbeddings: number;
  };
}

/** One parameter in the flat buffers: `offset`/`size` count float32 elements. HF name, HF shape. */
export interface ParamInfo {
  name: string;
  offset: number;
  size: number;
  shape: number[];
  /** whether AdamW applies weight decay to it (matrices yes; norms and biases no) */
  decay: boolean;
}

/**
 * Label value that excludes a position from the loss (the HF / PyTorch convention). The native code
 * declares it once (kIgnoreIndex, native/src/ignore_index.h) and exports it as `ignoreIndex`; a test holds
 * the two equal. Kept as a constant here so the data pipeline needs no addon.
 */
export const IGNORE_INDEX = -100;

/** A batch of rows, each `seqLen` tokens; arrays are row-major [rows, seqLen]. */
export interface NativeBatch {
  rows: number;
  seqLen: number;
  inputIds: Int32Array;
  /** per-position targets, already shifted; -100 = no loss */
  labels: Int32Array;
  /** positions restart at 0 for each segment */
  positionIds: Int32Array;
  /** contiguous runs; a token attends to earlier tokens of its own segment only */
  segmentIds: Int32Array;
}

export interface StepResult {
  lossSum: number; // sum of per-token cross entropy over targets
  targets: number; // number of positions with label != -100
  loss: number; // lossSum / targets (NaN when targets == 0)
  /** how many onGradsReady calls a backward makes (numLayers + 2) */
  gradBuckets: number;
}

/**
 * Called on the main thread each time a range of gradData becomes final during the backward: the head and
 * final norm, then each layer from last to first, then the embedding. Calls arrive asynchronously: count
 * them (StepResult.gradBuckets) rather than assume they precede the Promise.
 */
export type GradsReady = (offset: number, size: number) => void;

export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** global gradient-norm clipping; 0 or less: off */
  maxGradNorm: number;
  /**
   * The global gradient norm when the caller formed it over every rank's shard (ZeRO-1, required then);
   * absent: the norm of this model's whole gradData.
   */
  gradNorm?: number;
  /**
   * A model on a device whose ring mixes devices: the update runs on host copies of the weights, gradients and
   * moments with the CPU's arithmetic (then goes back to the device), so this rank keeps the CPU ranks' bits and
   * the ring's weight checksum compares them exactly. Ignored on the CPU, whose update is that arithmetic.
   */
  hostUpdate?: boolean;
}

export interface GenerateOptions {
  promptIds: Int32Array;
  maxNew: number;
  /** 0 = greedy */
  temperature: number;
  topP: number;
  seed: number;
  eosIds: Int32Array;
}

/** Bytes the model holds now, by kind (gradients and moments stay 0 until the first training use). */
export interface MemoryReport {
  /** baseParams + adapterParams */
  params: number;
  grads: number;
  /** both AdamW moments (the same number as `moments`) */
  optimizer: number;
  activations: number;
  /** params + grads + optimizer + activations */
  total: number;
  moments: number;
  /** the base weights in their storage precision */
  baseParams: number;
  adapterParams: number;
  /** 4 for an fp32 base, 2 for a bf16 one */
  baseBytesPerParam: number;
  /** fp32 staging of a bf16 base (part of activations) */
  scratch: number;
  /** activation bytes that activation checkpointing avoids keeping (0 when it is off) */
  activationsSaved: number;
  /** both AdamW moments of every trainable parameter, what `optimizer` would be without a ZeRO-1 shard */
  optimizerUnsharded: number;
}

/** LoRA on the base model's linear layers, as PEFT defines it: y = W x + b + scale * B A dropout(x). */
export interface LoraSettings {
  rank: number;
  alpha: number;
  /** dropout on the adapter's input during training (0: none) */
  dropout: number;
  /** module names among q_proj k_proj v_proj o_proj gate_proj up_proj down_proj */
  targets: string[];
  /** rsLoRA: scale alpha/sqrt(rank) instead of alpha/rank */
  rslora: boolean;
  /** A ~ kaiming-uniform like PEFT (bound 1/sqrt(in)), B = 0: step 0 equals the base model */
  seed: number;
  /**
   * keep the frozen base in bf16 (half its bytes; each layer widened to fp32 right before its GEMMs);
   * paramData() then throws and baseDataBf16() holds the weights. Default false.
   */
  baseBf16?: boolean;
}

export interface NativeModel {
  params(): ParamInfo[];
  /** zero-copy view of the flat parameter buffer (throws while the frozen base is held in bf16) */
  paramData(): Float32Array;
  /** zero-copy view of the bf16 bits of a frozen bf16 base (LoraSettings.baseBf16); null otherwise */
  baseDataBf16(): Uint16Array | null;
  /**
   * zero-copy view of the flat gradient buffer of the TRAINABLE parameters (trainableParams() offsets):
   * the base parameters in full training, the adapters once LoRA is on. Fetch it again after enableLora.
   */
  gradData(): Float32Array;
  /** zero-copy views of the AdamW moments of the trainable parameters (same offsets as gradData) */
  optimizerData(): { m: Float32Array; v: Float32Array };
  /** what gradData, optimizerData and adamwStep cover: params() in full training, loraParams() with LoRA */
  trainableParams(): ParamInfo[];
  /** gradient buckets [offset, size] of gradData in the order the backward reports them */
  gradBucketRanges(): [number, number][];
  /**
   * Freezes the base weights and adds LoRA adapters: the base gradients and AdamW moments are freed, the
   * optimizer restarts (step 0) on the adapters. Used at the start of a LoRA job and at a hybrid job's switch.
   */
  enableLora(settings: LoraSettings): void;
  /** enableLora off the main thread: rounding a large base to bf16 (baseBf16) takes seconds */
  enableLoraAsync(settings: LoraSettings): Promise<void>;
  /** null in full training */
  loraSettings(): LoraSettings | null;
  /** PEFT names (base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight), A [r, in], B [out, r] */
  loraParams(): ParamInfo[];
  /** zero-copy view of the adapter weights (loraParams() offsets) */
  loraData(): Float32Array;
  /**
   * W += scale * B A for every adapter, into paramData (the adapters are left as they are); a bf16 base
   * is widened back to fp32 first (paramData works again afterwards)
   */
  mergeLora(): Promise<void>;
  /** AdamW steps taken so far (drives bias correction); settable for checkpoint restore */
  getStep(): number;
  setStep(step: number): void;
  memory(): MemoryReport;
  /** where the model computes, as its backend names itself: "cpu", or "cuda:0 fp32 (...)" naming its GEMM */
  backendName(): string;
  /** HF-style init: normal(0, std) for matrices and embeddings, 1 for norms, 0 for biases */
  initRandom(seed: number, std: number): Promise<void>;
  /** clears the gradients (allocating them on first use) off the main thread */
  zeroGrad(): Promise<void>;
  /**
   * Forward (and backward when `backward`): gradients of lossScale * lossSum are ADDED to gradData.
   * lossScale defaults to 1/targets (the local mean). With keepLogits, logits() holds
   * [rows, seqLen, vocab] afterwards; tokenLosses() always holds the per-position loss (0 off-target).
   */
  forwardBackward(
    batch: NativeBatch,
    opts: {
      backward: boolean;
      lossScale?: number;
      keepLogits?: boolean;
      onGradsReady?: GradsReady;
      /** zero gradData first, in the same native call (off the main thread) */
      zeroGrads?: boolean;
      /**
       * The batch is this rank's zigzag share of each row (see worker/sequence_parallel/zigzag.ts): attention
       * runs round the group's ring over `link`. Every rank of the group must make the same call. A model on a
       * CUDA device may move the blocks by NCCL send/recv between device buffers instead: `ncclComm` (its NCCL
       * rank ncclRankOf(rank, size)) with `timeoutMs`, and no `link`.
       */
      sequenceParallel?:
        | { link: NativeRingLink; rank: number; size: number }
        | { ncclComm: NcclComm; timeoutMs: number; rank: number; size: number };
      /** cancel() on it stops the call between layers (see createCancelToken) */
      cancel?: NativeCancelToken;
      /** rows * seqLen: each position's loss weighs this much in the gradient (preference losses) */
      labelWeights?: Float32Array;
      /** forward only: the frozen base without its LoRA adapters (a preference loss's reference model) */
      adaptersOff?: boolean;
      /**
       * A model on a CUDA device: each gradient bucket is summed on the device by NCCL as it becomes final (on
       * the communicator's own stream, after the compute stream's work) instead of being copied to the host;
       * the call settles once every collective has finished (or failed after timeoutMs), and gradData() then
       * holds the sums (reduce-scatter: this rank's segment of each bucket).
       */
      ncclBuckets?: { comm: NcclComm; op: "all-reduce" | "reduce-scatter"; timeoutMs: number };
    },
  ): Promise<StepResult>;
  /**
   * A model on a CUDA device: one NCCL collective per [offset, size] range of its gradients or trainable
   * weights (the adapters under LoRA, else the fp32 base) on the device, then the host copy refreshed. Absent
   * where the addon has no CUDA backend.
   */
  ncclCollective?(
    comm: NcclComm,
    opts: { op: NcclOp; buffer: "grads" | "weights"; ranges: [number, number][]; timeoutMs: number },
  ): Promise<void>;
  logits(): Float32Array;
  tokenLosses(): Float32Array;
  /** global grad norm, optional clipping, then one AdamW step; returns the norm before clipping */
  adamwStep(opts: AdamWOptions): Promise<{ gradNorm: number; step: number }>;
  generate(opts: GenerateOptions): Promise<Int32Array>;
  /**
   * A hash of the bits of the base weights, the adapters (with LoRA) and both AdamW moments (not when
   * sharded by ZeRO-1), computed off the main thread: ranks that applied the same updates get the same string.
   */
  checksum(): Promise<string>;
  /**
   * Activation checkpointing: the forward keeps each layer's input only and the backward recomputes the
   * layer first. Same losses and gradients, less activation memory (memory().activationsSaved).
   */
  setActivationCheckpointing(on: boolean): void;
  /**
   * ZeRO-1: the [offset, size] ranges of gradData whose AdamW moments this model keeps, packed in order in
   * optimizerData(); [] keeps them all. Restarts the moments at zero; adamwStep then updates only these
   * ranges of the weights and needs `gradNorm`. Cleared by enableLora.
   */
  setOptimizerShard(ranges: [number, number][]): void;
  optimizerShard(): [number, number][];
  /** sum of squares of gradData over the optimizer shard (all of it when unsharded) */
  gradSumOfSquares(): number;
  /**
   * Allocates the trainable parameters' gradients and AdamW moments (zeroed) off the main thread. Without
   * it they come with the first call that needs them (gradData, optimizerData, a backward, adamwStep).
   */
  prepareTraining(): Promise<void>;
}

/** A sequence-parallel group's TCP link: listens from creation, joins the ring with join(). */
export interface NativeRingLink {
  readonly port: number;
  /**
   * Connects to the next rank while accepting the previous one (which must present the same secret). With
   * peerTimeoutMs, a step's transfer that makes no progress for that long fails naming the silent neighbour.
   */
  join(nextHost: string, nextPort: number, secret: string, timeoutMs: number, peerTimeoutMs?: number): Promise<void>;
  /** Ends any transfer in progress with an error; the sockets close when the object is collected. */
  close(): void;
}

export type NcclOp = "all-reduce" | "reduce-scatter" | "all-gather";
/** The devices whose models an NCCL data plane serves. */
export type NcclDevice = "cuda-emu" | `cuda:${number}`;

/**
 * One NCCL communicator (ncclConnect). Its rank is the NCCL rank: a reduce-scatter leaves segment `rank` of
 * each buffer summed (segments as worker/allreduce/partition.ts cuts them).
 */
export interface NcclComm {
  readonly rank: number;
  readonly size: number;
  readonly aborted: boolean;
  /** Ends the communicator now: a collective in progress fails, and so does every later one. */
  abort(): void;
  /** One collective on a device copy of `data`, written back to it; fails after timeoutMs without completion. */
  collective(data: Float32Array, op: NcclOp, timeoutMs: number): Promise<void>;
}

/** Whether libnccl.so.2 opens in this process (RINGTUNE_NCCL_LIB, a pip wheel's, or the system's). */
export interface NcclProbe {
  available: boolean;
  /** the CUDA runtime the data plane runs on: "the CUDA runtime" or "the ringtune CUDA emulator" */
  runtime?: string;
  path?: string;
  version?: number;
  reason?: string;
}

/** Stops a running forwardBackward at its next layer: its Promise then rejects with Error("cancelled"). */
export interface NativeCancelToken {
  cancel(): void;
  readonly cancelled: boolean;
}

export type TensorDtype = "F32" | "BF16" | "F16";

/** What the NVIDIA driver says about one CUDA device (probeCuda). */
export interface CudaProbe {
  usable: boolean;
  problem: "none" | "no_driver" | "no_device" | "driver_too_old" | "no_such_device" | "no_code_for_arch";
  /** one sentence naming what is missing; empty when usable */
  message: string;
  deviceName: string;
  devices: number;
  /** cuDriverGetVersion: 1000 * major + 10 * minor; 0 when unknown */
  driverVersion: number;
  /** of the device asked for: 10 * major + minor (90 = sm_90); 0 when unknown */
  computeCapability: number;
  /** the device's total memory; 0 when unknown */
  memoryBytes: number;
  /** the GPU architectures this build has code for, 10 * major + minor, ascending */
  builtArchs: number[];
}

/** Where a native model is built: the CPU, the CUDA emulator, or GPU N through ringtune_cuda_device.so. */
export type ModelDeviceName = "cpu" | "cuda-emu" | `cuda:${number}`;
/** How a CUDA device computes: bf16 operands over fp32 master weights, or fp32 throughout (the checking mode). */
export type ComputePrecision = "bf16" | "fp32";

/** Whether the GPU library (ringtune_cuda_device.so, built where nvcc is) loads beside this addon (cudaLibrary). */
export interface CudaLibrary {
  loaded: boolean;
  /** the file looked at: beside the addon, or RINGTUNE_CUDA_LIBRARY */
  path: string;
  /** why it cannot be used, naming the file; empty when loaded */
  message: string;
  /** what it holds: the CUDA runtime and the GPU code built; empty when not loaded */
  build: string;
}

/** One sequence's part of a batched decode step. */
export interface DecodeRow {
  /** an id given to BatchedDecoder.open */
  sequence: number;
  /** the new tokens: the whole prompt on the sequence's first step, then the token sampled last */
  tokens: Int32Array;
  /** 0 = greedy */
  temperature: number;
  topP: number;
  seed: number;
  /** index of this draw in the sequence's random stream (the number of tokens sampled before) */
  draw: number;
  /** stepWithLogprobs: how many of the likeliest tokens to report with their log-probabilities (0-20; default 0) */
  topLogprobs?: number;
}

/** A step's tokens and their log-probabilities under the model's distribution (before temperature and top-p). */
export interface StepWithLogprobs {
  /** each row's next token */
  tokens: Int32Array;
  /** each row's log-probability of its token */
  logprobs: Float32Array;
  /** the most topLogprobs any row asked for */
  topK: number;
  /** (rows, topK) the likeliest tokens, likeliest first; -1 past what a row asked for */
  topIds: Int32Array;
  /** (rows, topK) their log-probabilities */
  topLogprobs: Float32Array;
}

/**
 * Many LoRA adapters over one base model (the model it was created from, shared, not copied; fp32, or bf16
 * widened a layer at a time): each
 * step decodes every given sequence together, one base GEMM per linear layer plus each adapter's low-rank
 * product on its own rows; every sequence keeps its own KV cache.
 */
export interface BatchedDecoder {
  /** registers adapter `id` with zeroed weights; fill `data` at each param's offset before using it */
  addAdapter(
    id: number,
    settings: Pick<LoraSettings, "rank" | "alpha" | "targets" | "rslora">,
  ): { params: ParamInfo[]; data: Float32Array };
  /** sequences already open on it keep it until they close */
  removeAdapter(id: number): void;
  /** a sequence of at most `capacity` positions on adapter `adapter` (-1: the base alone) */
  open(sequence: number, adapter: number, capacity: number): void;
  close(sequence: number): void;
  /** one decode step off the main thread: each row's next token, in order; one step at a time */
  step(rows: DecodeRow[]): Promise<Int32Array>;
  /** step() that also reports log-probabilities */
  stepWithLogprobs(rows: DecodeRow[]): Promise<StepWithLogprobs>;
  /** bytes of the base weights, the adapters and the KV caches; 2 bytes per base parameter with a bf16 base */
  memory(): { base: number; adapters: number; caches: number; baseBytesPerParam: number };
}

/** One tensor (or a piece of one) to read: `count` values at `fileOffset` into `dst`. */
export interface ReadTensorItem {
  fileOffset: number;
  dtype: TensorDtype;
  count: number;
  /** float32 values, or bf16 bits */
  dst: Float32Array | Uint16Array;
  /** the tensor's name, for the error when a value is NaN or infinite */
  name?: string;
  /** the index of dst[0] within that tensor */
  firstIndex?: number;
}

export interface NativeAddon {
  /** The label that adds no loss: kIgnoreIndex of the native code, which IGNORE_INDEX must equal. */
  ignoreIndex: number;
  /** Whether the addon links the CUDA backend built against the CUDA emulator (device "cuda-emu"). */
  cudaEmu: boolean;
  /**
   * A decoder serving adapters over `base`, which must carry no LoRA of its own. baseBf16: the base's fp32
   * weights are rounded to bf16 and freed first (half the memory; paramData() then throws).
   */
  createBatchedDecoder(base: NativeModel, opts?: { baseBf16?: boolean }): BatchedDecoder;
  /** Builds the model on the calling thread: for small models and tests; workers use createModelAsync. */
  createModel(config: NativeModelConfig): NativeModel;
  /** Allocates and zeroes the weights off the main thread (no gradients or moments until training needs them). */
  /** baseBf16: the base is created frozen in bf16 (for LoRA with a bf16 base), never in fp32 first */
  /**
   * device "cuda:N": over the CUDA backend of ringtune_cuda_device.so on GPU N (rejects, naming the file, when
   * that library is absent or from another build). The same on the CUDA emulator:
   * device "cuda-emu": the model over the CUDA backend on the CUDA emulator; paramData(), baseDataBf16(),
   * loraData(), gradData() and optimizerData() are then host copies kept in step with the device at the edges
   * of each call (an adamwStep refreshes the weights' and the moments' copies).
   * precision (a CUDA device's; default "fp32", the checking mode): "bf16" computes GEMMs and attention on bf16
   * operands (a bf16 compute copy of the weights, refreshed by each AdamW step) with fp32 accumulation over fp32
   * master weights, gradients, moments and activations. The CPU computes in fp32 whatever it says.
   */
  createModelAsync(
    config: NativeModelConfig,
    opts?: { baseBf16?: boolean; device?: ModelDeviceName; precision?: ComputePrecision },
  ): Promise<NativeModel>;
  /** A ring link for sequence parallelism listening on host:port (0: any free port). */
  createRingLink(host: string, port: number): NativeRingLink;
  /** A token that stops the forwardBackward calls given it, from the main thread while they run. */
  createCancelToken(): NativeCancelToken;
  /**
   * Reads tensors from a file at absolute byte offsets into `dst`, in pieces over native threads: a
   * Float32Array gets float32 values, a Uint16Array bf16 bits (wider dtypes rounded to nearest even); a piece
   * already in the destination's dtype is read in place. onProgress gets the bytes read so far after each
   * piece (asynchronously: a call may follow the Promise). A NaN or infinite value rejects, naming the file,
   * the item's `name` and the index (`firstIndex` + the offset in `dst`: an item may be a piece of a larger
   * tensor).
   */
  readTensors(file: string, items: ReadTensorItem[], onProgress?: (bytesRead: number) => void): Promise<void>;
  /**
   * Writes `header` (the full safetensors prefix: 8-byte length + JSON) then each item converted to
   * its dtype (BF16: round to nearest even; a Uint16Array src holds bf16 bits), to a temporary name,
   * fsyncs, and renames to `file`.
   */
  writeSafetensors(
    file: string,
    header: Uint8Array,
    items: { src: Float32Array | Uint16Array; dtype: "F32" | "BF16" }[],
  ): Promise<void>;
  /** Asks the NVIDIA driver (loaded at run time; none is needed to build) whether CUDA device `index` is usable. */
  probeCuda(index: number): CudaProbe;
  /** Loads the GPU library (once) without touching a GPU; absent from addons older than it. */
  cudaLibrary?(): CudaLibrary;
  /** Free and total memory of "cuda:N" (through the GPU library) or "cuda-emu" (the emulator's arena). */
  deviceMemory?(device: ModelDeviceName): { freeBytes: number; totalBytes: number };
  /**
   * NCCL, loaded at run time (absent where the addon has no CUDA backend). `device` picks the data plane of the
   * runtime that holds the models: "cuda-emu" (the default) the emulator's in the addon, "cuda:N" the GPU
   * library's on GPU N; a GPU library that cannot be loaded throws, naming why.
   */
  ncclProbe?(device?: NcclDevice): NcclProbe;
  /** a new communicator id (128 bytes), its bootstrap run by this process; throws without NCCL */
  ncclUniqueId?(device?: NcclDevice): Uint8Array;
  /** Joins communicator `id` as `rank` of `size` (non-blocking, polled) on `device`; rejects after timeoutMs. */
  ncclConnect?(id: Uint8Array, rank: number, size: number, timeoutMs: number, device?: NcclDevice): Promise<NcclComm>;
  /** the devices this build runs the model on ("cpu", "cuda", "cuda-emu"); absent: the CPU only */
  modelDevices?: readonly string[];
}

let cached: NativeAddon | undefined;

/** Loads the addon built by `make build`; RINGTUNE_NATIVE overrides the path. */
export function loadAddon(): NativeAddon {
  if (cached) return cached;
  const here = path.dirname(fileURLToPath(import.meta.url));
  // dist/native/js -> repository root
  const root = path.resolve(here, "../../..");
  const file = process.env.RINGTUNE_NATIVE ?? path.join(root, "build/native/ringtune_native.node");
  if (!existsSync(file)) {
    throw new Error(`native addon not found at ${file}: run 'make build' first`);
  }
  cached = createRequire(import.meta.url)(file) as NativeAddon;
  return cached;
}
