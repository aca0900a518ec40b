// Hugging Face config.json for LlamaForCausalLM and Qwen2ForCausalLM: validated with zod, mapped to
// the NativeModelConfig the core wants, and written back in a form transformers and vLLM load.
// Defaults follow transformers' LlamaConfig / Qwen2Config, so a config that omits a key means what
// it means to HF.
import { z } from "zod";
import type { NativeModelConfig } from "../native/js/addon.js";
import { CorruptFileError, UnknownArchitectureError, UnsupportedConfigError } from "./errors.js";
import { writeOutputFileAtomically } from "../files/output_files.js";
import { readRegularFile } from "../files/input_files.js";

export const ARCHITECTURES = {
  LlamaForCausalLM: "llama",
  Qwen2ForCausalLM: "qwen2",
} as const;
export type Architecture = keyof typeof ARCHITECTURES;
type ModelType = (typeof ARCHITECTURES)[Architecture];

const positive = z.number().int().positive();
const tokenIds = z.union([z.number().int(), z.array(z.number().int())]).nullish();

// Keys we do not know are kept (HF configs carry many) and written back unchanged.
const configSchema = z.looseObject({
  architectures: z.array(z.string()).min(1).optional(),
  model_type: z.string().optional(),
  vocab_size: positive,
  hidden_size: positive,
  intermediate_size: positive,
  num_hidden_layers: positive,
  num_attention_heads: positive,
  num_key_value_heads: positive.nullish(),
  head_dim: positive.nullish(),
  hidden_act: z.string().optional(),
  rms_norm_eps: z.number().positive().optional(),
  rope_theta: z.number().positive().optional(),
  rope_scaling: z.record(z.string(), z.unknown()).nullish(),
  // transformers 5 moves rope_theta and the scaling into one object
  rope_parameters: z.record(z.string(), z.unknown()).nullish(),
  max_position_embeddings: positive.optional(),
  tie_word_embeddings: z.boolean().optional(),
  attention_bias: z.boolean().optional(),
  mlp_bias: z.boolean().optional(),
  use_sliding_window: z.boolean().optional(),
  initializer_range: z.number().positive().optional(),
  bos_token_id: tokenIds,
  eos_token_id: tokenIds,
});
type ConfigJson = z.infer<typeof configSchema>;

export interface HfConfig {
  architecture: Architecture;
  modelType: ModelType;
  native: NativeModelConfig;
  /** std of the normal init (HF initializer_range) */
  initializerRange: number;
  maxPositionEmbeddings: number;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** the config as read, so a save keeps keys we do not interpret */
  raw: Record<string, unknown>;
}

function zodDetail(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length > 0 ? i.path.join(".") : "(root)"}: ${i.message}`).join("; ");
}

function unknownArchitecture(file: string, named: string): UnknownArchitectureError {
  return new UnknownArchitectureError(
    file,
    `unknown architecture ${named} (supported: ${Object.keys(ARCHITECTURES).join(", ")})`,
  );
}

function architectureOf(file: string, cfg: ConfigJson): Architecture {
  const named = cfg.architectures?.[0];
  if (named !== undefined) {
    if (named in ARCHITECTURES) return named as Architecture;
    throw unknownArchitecture(file, named);
  }
  const byType = Object.entries(ARCHITECTURES).find(([, t]) => t === cfg.model_type);
  if (byType) return byType[0] as Architecture;
  throw new UnknownArchitectureError(
    file,
    `unknown architecture: no architectures and model_type ${JSON.stringify(cfg.model_type)} (supported: llama, qwen2)`,
  );
}

function ropeScalingOf(
  file: string,
  scaling: Record<string, unknown> | null | undefined,
): NativeModelConfig["ropeScaling"] {
  if (!scaling) return null;
  const type = scaling.rope_type ?? scaling.type;
  if (type === undefined || type === "default") return null;
  if (type !== "llama3") {
    throw new UnsupportedConfigError(
      file,
      `rope_scaling rope_type ${JSON.stringify(type)} is not supported (supported: llama3)`,
    );
  }
  const llama3 = z.object({
    factor: z.number().positive(),
    low_freq_factor: z.number().positive(),
    high_freq_factor: z.number().positive(),
    original_max_position_embeddings: positive,
  });
  const r = llama3.safeParse(scaling);
  if (!r.success) throw new CorruptFileError(file, `rope_scaling (llama3): ${zodDetail(r.error)}`);
  if (r.data.high_freq_factor <= r.data.low_freq_factor) {
    throw new CorruptFileError(file, "rope_scaling (llama3): high_freq_factor must exceed low_freq_factor");
  }
  return {
    factor: r.data.factor,
    lowFreqFactor: r.data.low_freq_factor,
    highFreqFactor: r.data.high_freq_factor,
    originalMaxPositionEmbeddings: r.data.original_max_position_embeddings,
  };
}

const asList = (v: number | number[] | null | undefined): number[] => (v == null ? [] : Array.isArray(v) ? v : [v]);

/** config.json checked against the schema; an architecture we do not know is named before any missing field. */
function validConfig(raw: Record<string, unknown>, file: string): ConfigJson {
  const r = configSchema.safeParse(raw);
  if (r.success) return r.data;
  // "unknown architecture" is a better answer for a BERT config than "no num_hidden_layers".
  const arch = raw.architectures;
  if (Array.isArray(arch) && typeof arch[0] === "string" && !(arch[0] in ARCHITECTURES))
    throw unknownArchitecture(file, arch[0]);
  throw new CorruptFileError(file, zodDetail(r.error));
}

/** Refuses the features the native model does not implement. */
function checkSupported(file: string, cfg: ConfigJson, modelType: string): void {
  if (cfg.hidden_act !== undefined && cfg.hidden_act !== "silu") {
    throw new UnsupportedConfigError(
      file,
      `hidden_act ${JSON.stringify(cfg.hidden_act)} is not supported (the MLP is SwiGLU: silu)`,
    );
  }
  if (modelType === "qwen2" && cfg.use_sliding_window) {
    throw new UnsupportedConfigError(file, "use_sliding_window: true is not supported (attention is full causal)");
  }
}

/** Query and key/value heads and the width of each, checked to divide as attention and RoPE need. */
function attentionHeads(file: string, cfg: ConfigJson): { numHeads: number; numKvHeads: number; headDim: number } {
  const bad = (detail: string) => new CorruptFileError(file, detail);
  const numHeads = cfg.num_attention_heads;
  const numKvHeads = cfg.num_key_value_heads ?? numHeads;
  if (numHeads % numKvHeads !== 0) {
    throw bad(`num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  }
  let headDim = cfg.head_dim ?? undefined;
  if (headDim === undefined) {
    if (cfg.hidden_size % numHeads !== 0)
      throw bad(
        `hidden_size ${cfg.hidden_size} is not a multiple of num_attention_heads ${numHeads}, and head_dim is not given`,
      );
    headDim = cfg.hidden_size / numHeads;
  }
  if (headDim % 2 !== 0) throw bad(`head_dim ${headDim} is odd; RoPE rotates pairs of halves`);
  return { numHeads, numKvHeads, headDim };
}

/** RoPE's base and scaling, from the top-level keys or (newer transformers) rope_parameters. */
function ropeOf(file: string, cfg: ConfigJson): Pick<NativeModelConfig, "ropeTheta" | "ropeScaling"> {
  const ropeParams = cfg.rope_parameters ?? undefined;
  const ropeThetaFromParams = ropeParams?.rope_theta;
  if (ropeThetaFromParams !== undefined && (typeof ropeThetaFromParams !== "number" || !(ropeThetaFromParams > 0))) {
    throw new CorruptFileError(
      file,
      `rope_parameters.rope_theta ${JSON.stringify(ropeThetaFromParams)} is not a positive number`,
    );
  }
  return {
    ropeTheta: cfg.rope_theta ?? (ropeThetaFromParams as number | undefined) ?? 10000,
    ropeScaling: ropeScalingOf(file, cfg.rope_scaling ?? ropeParams),
  };
}

/** Validates a parsed config.json (`file` names it in errors) and derives the native config. */
export function parseHfConfig(json: unknown, file: string): HfConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new CorruptFileError(file, "not a JSON object");
  const raw = json as Record<string, unknown>;
  const cfg = validConfig(raw, file);
  const architecture = architectureOf(file, cfg);
  const modelType = ARCHITECTURES[architecture];
  checkSupported(file, cfg, modelType);
  const heads = attentionHeads(file, cfg);
  const rope = ropeOf(file, cfg);
  const qwen = modelType === "qwen2";
  const native: NativeModelConfig = {
    vocabSize: cfg.vocab_size,
    hiddenSize: cfg.hidden_size,
    intermediateSize: cfg.intermediate_size,
    numLayers: cfg.num_hidden_layers,
    ...heads,
    rmsNormEps: cfg.rms_norm_eps ?? 1e-6,
    ropeTheta: rope.ropeTheta,
    tieWordEmbeddings: cfg.tie_word_embeddings ?? false,
    // Qwen2 always has q/k/v bias and no o_proj bias; Llama has both or neither (attention_bias).
    qkvBias: qwen ? true : (cfg.attention_bias ?? false),
    oBias: qwen ? false : (cfg.attention_bias ?? false),
    mlpBias: qwen ? false : (cfg.mlp_bias ?? false),
    ropeScaling: rope.ropeScaling,
  };
  return {
    architecture,
    modelType,
    native,
    initializerRange: cfg.initializer_range ?? 0.02,
    maxPositionEmbeddings: cfg.max_position_embeddings ?? (qwen ? 32768 : 2048),
    bosTokenId: asList(cfg.bos_token_id)[0] ?? null,
    eosTokenIds: asList(cfg.eos_token_id),
    raw,
  };
}

/** Reads and validates `file` (a config.json). */
export async function readHfConfig(file: string): Promise<HfConfig> {
  let text: string;
  try {
    text = readRegularFile(file);
  } catch (err) {
    throw new CorruptFileError(file, `cannot read: ${(err as Error).message}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CorruptFileError(file, `not valid JSON (${(err as Error).message})`, { cause: err });
  }
  return parseHfConfig(json, file);
}

const TORCH_DTYPE = { F32: "float32", BF16: "bfloat16" } as const;

/**
 * The config.json to save: the keys read (so nothing we do not interpret is lost) with every field
 * the model's shape depends on written out explicitly, so the folder does not rely on library defaults.
 */
export function configJson(cfg: HfConfig, dtype: "F32" | "BF16"): Record<string, unknown> {
  const n = cfg.native;
  const out: Record<string, unknown> = {
    ...cfg.raw,
    architectures: [cfg.architecture],
    model_type: cfg.modelType,
    vocab_size: n.vocabSize,
    hidden_size: n.hiddenSize,
    intermediate_size: n.intermediateSize,
    num_hidden_layers: n.numLayers,
    num_attention_heads: n.numHeads,
    num_key_value_heads: n.numKvHeads,
    head_dim: n.headDim,
    hidden_act: "silu",
    max_position_embeddings: cfg.maxPositionEmbeddings,
    rms_norm_eps: n.rmsNormEps,
    rope_theta: n.ropeTheta,
    rope_scaling: n.ropeScaling && {
      rope_type: "llama3",
      factor: n.ropeScaling.factor,
      low_freq_factor: n.ropeScaling.lowFreqFactor,
      high_freq_factor: n.ropeScaling.highFreqFactor,
      original_max_position_embeddings: n.ropeScaling.originalMaxPositionEmbeddings,
    },
    tie_word_embeddings: n.tieWordEmbeddings,
    initializer_range: cfg.initializerRange,
    torch_dtype: TORCH_DTYPE[dtype],
  };
  // rope_parameters would contradict the explicit rope_theta/rope_scaling written above.
  delete out.rope_parameters;
  if (cfg.modelType === "llama") {
    out.attention_bias = n.qkvBias;
    out.mlp_bias = n.mlpBias;
  } else {
    out.use_sliding_window = false;
  }
  if (cfg.bosTokenId !== null) out.bos_token_id = cfg.bosTokenId;
  if (cfg.eosTokenIds.length > 0)
    out.eos_token_id = cfg.eosTokenIds.length === 1 ? cfg.eosTokenIds[0] : cfg.eosTokenIds;
  return out;
}

/** Writes a JSON file via a temporary name, fsync and a rename, so a reader never sees half of it. */
export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await writeOutputFileAtomically(file, JSON.stringify(value, null, 2) + "\n");
}

export async function writeConfig(file: string, cfg: HfConfig, dtype: "F32" | "BF16"): Promise<void> {
  await writeJsonAtomic(file, configJson(cfg, dtype));
}
