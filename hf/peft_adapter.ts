// PEFT LoRA adapter folders in and out of the native core: adapter_config.json and
// adapter_model.safetensors exactly as PEFT's `save_pretrained` writes them, so PEFT, vLLM's
// LoRARequest and ringtune all read the same folder.
//
// Format (huggingface/peft): the config is `asdict(LoraConfig)` dumped with sort_keys and indent 2
// (src/peft/config.py); the tensors are the adapter's state dict WITHOUT the adapter name
// ("...q_proj.lora_A.weight", not "...q_proj.lora_A.default.weight"), prefixed "base_model.model."
// by the PeftModel/LoraModel wrappers, saved with metadata {"format": "pt"} (src/peft/peft_model.py).
// A is [r, in] and B is [out, r]; the update is W += scale * B A with scale alpha/r (alpha/sqrt(r)
// with rsLoRA).
import { rm } from "node:fs/promises";
import path from "node:path";
import { loadAddon } from "../native/js/addon.js";
import type { LoraSettings, NativeModel, TensorDtype } from "../native/js/addon.js";
import { writeJsonAtomic } from "./hf_config.js";
import { makeOutputDir } from "../files/output_files.js";
import { inputPresent, readRegularFile, withInputPath } from "../files/input_files.js";
import { readSafetensorsHeader, readTensorsF32, writeSafetensors } from "./safetensors.js";
import type { SafetensorsHeader, WriteTensor } from "./safetensors.js";
import {
  CorruptFileError,
  MissingTensorError,
  ModelFormatError,
  ShapeMismatchError,
  UnexpectedTensorError,
} from "./errors.js";

export const ADAPTER_CONFIG = "adapter_config.json";
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";
/** What PEFT writes with safe_serialization=False: a pickle, which we do not read. */
const ADAPTER_PICKLE = "adapter_model.bin";

/** The decoder's linear layers LoRA can target, and the submodule each sits in. */
export const LORA_MODULES = {
  q_proj: "self_attn",
  k_proj: "self_attn",
  v_proj: "self_attn",
  o_proj: "self_attn",
  gate_proj: "mlp",
  up_proj: "mlp",
  down_proj: "mlp",
} as const;
export type LoraModule = keyof typeof LORA_MODULES;

/** PEFT's shorthand for every linear layer but the output head (constants.INCLUDE_LINEAR_LAYERS_SHORTHAND). */
const ALL_LINEAR = "all-linear";

/** adapter_config.json misses a field, or a field has the wrong type or value. */
export class AdapterConfigError extends ModelFormatError {}

/** The adapter uses a PEFT feature the native core does not implement (DoRA, rank patterns, trained biases...). */
export class UnsupportedAdapterError extends ModelFormatError {}

export interface ShapedName {
  name: string;
  shape: readonly number[];
}

/** One adapter tensor in PEFT's naming, e.g. base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight. */
export function adapterTensorName(layer: number, module: LoraModule, which: "A" | "B"): string {
  return `base_model.model.model.layers.${layer}.${LORA_MODULES[module]}.${module}.lora_${which}.weight`;
}

const BASE_LINEAR = /^model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.weight$/;

/**
 * The adapter tensors LoRA with `settings` adds to a base model whose parameter table is `baseParams`
 * (HF names and shapes, as NativeModel.params() lists them): A [rank, in] and B [out, rank] for each
 * targeted linear layer of every decoder layer. Derived from the base weights alone, so an adapter can
 * be checked before any native LoRA state exists.
 */
export function expectedAdapterTensors(
  baseParams: readonly ShapedName[],
  settings: Pick<LoraSettings, "rank" | "targets">,
): Map<string, number[]> {
  const targets = new Set(settings.targets);
  const out = new Map<string, number[]>();
  for (const p of baseParams) {
    const m = BASE_LINEAR.exec(p.name);
    if (!m) continue;
    const module = m[3] as LoraModule;
    if (LORA_MODULES[module] !== m[2] || !targets.has(module)) continue;
    const [outDim, inDim] = p.shape as [number, number];
    out.set(adapterTensorName(Number(m[1]), module, "A"), [settings.rank, inDim]);
    out.set(adapterTensorName(Number(m[1]), module, "B"), [outDim, settings.rank]);
  }
  return out;
}

export interface SaveAdapterOptions {
  /** base_model_name_or_path: the hub id or folder of the weights the adapter was trained on */
  baseModel: string;
}

/**
 * adapter_config.json for `settings`, key for key as PEFT's LoraConfig serialises (PEFT's documented
 * example in docs/source/developer_guides/checkpoint.md). Fields we do not use keep PEFT's defaults,
 * so any PEFT since 0.10 (layer_replication, use_dora) loads it without warnings.
 */
export function adapterConfigJson(settings: LoraSettings, baseModel: string): Record<string, unknown> {
  const config: Record<string, unknown> = {
    alpha_pattern: {},
    // PEFT records the base class only for models without a task type; ours is CAUSAL_LM
    auto_mapping: null,
    base_model_name_or_path: baseModel,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: settings.alpha,
    lora_dropout: settings.dropout,
    megatron_config: null,
    megatron_core: "megatron.core",
    modules_to_save: null,
    peft_type: "LORA",
    r: settings.rank,
    rank_pattern: {},
    revision: null,
    target_modules: [...settings.targets],
    task_type: "CAUSAL_LM",
    use_dora: false,
    use_rslora: settings.rslora,
  };
  return config;
}

const fmt = (shape: readonly number[]) => `[${shape.join(",")}]`;

/**
 * Writes the model's LoRA adapters as a PEFT folder (adapter_config.json, adapter_model.safetensors,
 * F32). A leftover adapter_model.bin is removed: PEFT prefers safetensors, but a stale pickle beside
 * new weights would only mislead.
 */
export async function saveAdapter(model: NativeModel, dir: string, opts: SaveAdapterOptions): Promise<void> {
  const settings = model.loraSettings();
  if (settings === null) throw new Error(`saveAdapter ${dir}: the model has no LoRA adapters (call enableLora first)`);
  const params = model.loraParams();
  checkNativeTable(params, expectedAdapterTensors(model.params(), settings), `saveAdapter ${dir}`);
  await makeOutputDir(dir);
  const data = model.loraData();
  const tensors: WriteTensor[] = params
    .map((p) => ({
      name: p.name,
      shape: p.shape,
      dtype: "F32" as const,
      data: data.subarray(p.offset, p.offset + p.size),
    }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  await writeSafetensors(path.join(dir, ADAPTER_WEIGHTS), tensors);
  await rm(path.join(dir, ADAPTER_PICKLE), { force: true });
  await writeJsonAtomic(path.join(dir, ADAPTER_CONFIG), adapterConfigJson(settings, opts.baseModel));
}

export interface LoadedAdapter {
  dir: string;
  /** what enableLora wants (seed 0: the adapter's A and B replace the random init) */
  settings: LoraSettings;
  baseModel: string | null;
  /** adapter_config.json as read */
  config: Record<string, unknown>;
  /** every tensor, converted to float32, by PEFT name */
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

/** PEFT fields that must keep their default: the native core implements plain LoRA on linear weights only. */
const MUST_BE_DEFAULT: readonly [key: string, isDefault: (v: unknown) => boolean, what: string][] = [
  ["use_dora", (v) => v === false, "DoRA"],
  ["fan_in_fan_out", (v) => v === false, "fan_in_fan_out (Conv1D-style weights)"],
  ["bias", (v) => v === "none", "trained biases"],
  ["lora_bias", (v) => v === false, "a bias on lora_B"],
  ["modules_to_save", (v) => v === null || (Array.isArray(v) && v.length === 0), "fully trained extra modules"],
  ["layers_to_transform", (v) => v === null, "LoRA on a subset of the layers"],
  ["layer_replication", (v) => v === null, "layer replication"],
  ["rank_pattern", (v) => isEmptyObject(v), "per-module ranks"],
  ["alpha_pattern", (v) => isEmptyObject(v), "per-module alphas"],
  ["exclude_modules", (v) => v === null || (Array.isArray(v) && v.length === 0), "excluded modules"],
  ["target_parameters", (v) => v === null || (Array.isArray(v) && v.length === 0), "LoRA on raw parameters"],
  ["trainable_token_indices", (v) => v === null, "trainable token indices"],
  ["use_qalora", (v) => v === false, "QA-LoRA"],
  ["alora_invocation_tokens", (v) => v === null, "activated LoRA"],
];

function isEmptyObject(v: unknown): boolean {
  return v === null || (typeof v === "object" && !Array.isArray(v) && Object.keys(v as object).length === 0);
}

/** The module names a target_modules entry stands for; PEFT also accepts a regex string, which we do not. */
function parseTargets(file: string, raw: unknown): LoraModule[] {
  const known = Object.keys(LORA_MODULES);
  if (raw === ALL_LINEAR) return known as LoraModule[];
  if (typeof raw === "string") {
    throw new UnsupportedAdapterError(
      file,
      `target_modules is the pattern ${JSON.stringify(raw)}; only a list of module names (${known.join(" ")}) or "all-linear" is supported`,
    );
  }
  if (!Array.isArray(raw) || raw.length === 0 || !raw.every((t) => typeof t === "string")) {
    throw new AdapterConfigError(
      file,
      `target_modules must be a non-empty list of module names, got ${JSON.stringify(raw)}`,
    );
  }
  for (const t of raw as string[]) {
    if (!known.includes(t)) {
      throw new UnsupportedAdapterError(
        file,
        `target_modules: unknown target module ${JSON.stringify(t)} (Llama/Qwen2 linear layers: ${known.join(" ")})`,
      );
    }
  }
  return [...new Set(raw as LoraModule[])];
}

/** Validates adapter_config.json (already parsed) and maps it to LoraSettings. */
export function parseAdapterConfig(file: string, json: unknown): { settings: LoraSettings; baseModel: string | null } {
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new AdapterConfigError(file, "not a JSON object");
  const c = json as Record<string, unknown>;
  if (!("peft_type" in c)) throw new AdapterConfigError(file, `peft_type is missing (expected "LORA")`);
  if (c.peft_type !== "LORA")
    throw new AdapterConfigError(file, `peft_type is ${JSON.stringify(c.peft_type)}, expected "LORA"`);
  if (!("r" in c)) throw new AdapterConfigError(file, "r (the LoRA rank) is missing");
  const r = c.r;
  if (typeof r !== "number" || !Number.isInteger(r) || r < 1)
    throw new AdapterConfigError(file, `r must be a positive integer, got ${JSON.stringify(r)}`);
  // PEFT's defaults for the keys a hand-written config may omit (LoraConfig: lora_alpha 8, dropout 0)
  const alpha = c.lora_alpha ?? 8;
  if (typeof alpha !== "number" || !(alpha > 0))
    throw new AdapterConfigError(file, `lora_alpha must be a positive number, got ${JSON.stringify(alpha)}`);
  const dropout = c.lora_dropout ?? 0;
  if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1))
    throw new AdapterConfigError(file, `lora_dropout must be a number in [0, 1), got ${JSON.stringify(dropout)}`);
  const rslora = c.use_rslora ?? false;
  if (typeof rslora !== "boolean")
    throw new AdapterConfigError(file, `use_rslora must be true or false, got ${JSON.stringify(rslora)}`);
  if (c.task_type !== undefined && c.task_type !== null && c.task_type !== "CAUSAL_LM") {
    throw new UnsupportedAdapterError(
      file,
      `task_type is ${JSON.stringify(c.task_type)}; only CAUSAL_LM adapters apply to a causal LM`,
    );
  }
  if (!("target_modules" in c) || c.target_modules === null)
    throw new AdapterConfigError(file, "target_modules is missing");
  const targets = parseTargets(file, c.target_modules);
  for (const [key, isDefault, what] of MUST_BE_DEFAULT) {
    if (key in c && !isDefault(c[key])) {
      throw new UnsupportedAdapterError(file, `${key} is ${JSON.stringify(c[key])}: ${what} is not supported`);
    }
  }
  const base = c.base_model_name_or_path;
  if (base !== undefined && base !== null && typeof base !== "string") {
    throw new AdapterConfigError(file, `base_model_name_or_path must be a string, got ${JSON.stringify(base)}`);
  }
  return {
    settings: { rank: r, alpha, dropout, targets, rslora, seed: 0 },
    baseModel: (base as string | undefined) ?? null,
  };
}

async function readAdapterConfig(dir: string): Promise<Record<string, unknown>> {
  const file = path.join(dir, ADAPTER_CONFIG);
  if (!inputPresent(file)) throw new CorruptFileError(dir, `no ${ADAPTER_CONFIG}: not a PEFT adapter folder`);
  let json: unknown;
  try {
    json = JSON.parse(readRegularFile(file));
  } catch (err) {
    throw new AdapterConfigError(file, `not valid JSON (${(err as Error).message})`, { cause: err });
  }
  return json as Record<string, unknown>;
}

async function readAdapterHeader(dir: string): Promise<SafetensorsHeader> {
  const file = path.join(dir, ADAPTER_WEIGHTS);
  if (!inputPresent(file)) {
    const pickle = inputPresent(path.join(dir, ADAPTER_PICKLE));
    throw new CorruptFileError(
      dir,
      pickle
        ? `${ADAPTER_PICKLE} is a pickle, which is not read; save the adapter with safe_serialization=True (${ADAPTER_WEIGHTS})`
        : `no ${ADAPTER_WEIGHTS}: not a PEFT adapter folder`,
    );
  }
  return readSafetensorsHeader(file);
}

/**
 * PEFT keeps the adapter name in memory ("lora_A.default.weight") but strips it on save; a file that
 * still has it came from a raw state_dict and would load into nothing under PEFT either.
 */
const WITH_ADAPTER_NAME = /\.lora_[AB]\.[^.]+\.weight$/;

/** Checks the weight file's tensors against the expected table: every one present, shaped right, none extra. */
function matchTensors(header: SafetensorsHeader, expected: Map<string, number[]>): void {
  for (const [name, shape] of expected) {
    const t = header.tensors.get(name);
    if (!t) {
      const missing = [...expected.keys()].filter((n) => !header.tensors.has(n));
      const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : "";
      throw new MissingTensorError(header.file, `missing tensor ${name} (shape ${fmt(shape)})${more}`);
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new ShapeMismatchError(
        header.file,
        `tensor ${name} has shape ${fmt(t.shape)}, expected ${fmt(shape)} for this base model and r`,
      );
    }
  }
  for (const t of header.tensors.values()) {
    if (expected.has(t.name)) continue;
    const hint = WITH_ADAPTER_NAME.test(t.name)
      ? ": PEFT saves names without the adapter name (lora_A.weight, not lora_A.default.weight)"
      : ": the base model has no such module, or it is not among target_modules";
    throw new UnexpectedTensorError(header.file, `unexpected tensor ${t.name} (shape ${fmt(t.shape)})${hint}`);
  }
}

/**
 * Reads and validates a PEFT LoRA adapter folder. With `baseParams` (the base model's parameter table)
 * the tensors are checked name by name and shape by shape against that model; without it, only that
 * each is a lora_A/lora_B pair of the stated rank on a known module.
 */
export async function loadAdapter(dir: string, baseParams?: readonly ShapedName[]): Promise<LoadedAdapter> {
  const configFile = path.join(dir, ADAPTER_CONFIG);
  const config = await readAdapterConfig(dir);
  const { settings, baseModel } = parseAdapterConfig(configFile, config);
  const header = await readAdapterHeader(dir);
  if (baseParams) {
    matchTensors(header, expectedAdapterTensors(baseParams, settings));
  } else {
    checkAdapterNames(header, settings);
  }
  const data = await readTensorsF32(header);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const t of header.tensors.values()) tensors.set(t.name, { shape: t.shape, data: data.get(t.name)! });
  return { dir, settings, baseModel, config, tensors };
}

const ADAPTER_NAME = /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_([AB])\.weight$/;

/** Base-free checks: PEFT names on known, targeted modules, rank r on the right axis, A and B in pairs. */
function checkAdapterNames(header: SafetensorsHeader, settings: LoraSettings): void {
  const seen = new Set<string>();
  for (const t of header.tensors.values()) {
    const m = ADAPTER_NAME.exec(t.name);
    const module = m?.[3] as LoraModule | undefined;
    if (!m || !module || LORA_MODULES[module] !== m[2] || !settings.targets.includes(module)) {
      const hint = WITH_ADAPTER_NAME.test(t.name) ? ": PEFT saves names without the adapter name" : "";
      throw new UnexpectedTensorError(header.file, `unexpected tensor ${t.name} (shape ${fmt(t.shape)})${hint}`);
    }
    const rankAxis = m[4] === "A" ? 0 : 1;
    if (t.shape.length !== 2 || t.shape[rankAxis] !== settings.rank) {
      const want = m[4] === "A" ? `[${settings.rank}, in]` : `[out, ${settings.rank}]`;
      throw new ShapeMismatchError(
        header.file,
        `tensor ${t.name} has shape ${fmt(t.shape)}, expected ${want} (r = ${settings.rank})`,
      );
    }
    seen.add(t.name);
  }
  for (const name of seen) {
    const other = name.replace(/lora_([AB])\.weight$/, (_, w: string) => `lora_${w === "A" ? "B" : "A"}.weight`);
    if (!seen.has(other)) throw new MissingTensorError(header.file, `missing tensor ${other} (the pair of ${name})`);
  }
  if (seen.size === 0) throw new MissingTensorError(header.file, "no adapter tensors");
}

/** The core's adapter table must be the one PEFT names: a disagreement is a bug in the core, not in a file. */
function checkNativeTable(params: readonly ShapedName[], expected: Map<string, number[]>, what: string): void {
  const native = new Map(params.map((p) => [p.name, p.shape]));
  for (const [name, shape] of expected) {
    const got = native.get(name);
    if (!got || fmt(got) !== fmt(shape))
      throw new Error(
        `${what}: the native LoRA table has ${got ? fmt(got) : "no"} ${name}, PEFT expects ${fmt(shape)}`,
      );
  }
  if (native.size !== expected.size)
    throw new Error(`${what}: the native LoRA table has ${native.size} tensors, PEFT expects ${expected.size}`);
}

/**
 * Loads a PEFT adapter onto `model` (a base model in full training): checks the folder against the
 * model's weights, enables LoRA with the adapter's settings and reads the tensors straight into
 * loraData() at the loraParams() offsets. Then the model trains on (continuing the adapter) or generates.
 * `baseBf16` keeps the frozen base in bf16, as the job that trained the adapter had it.
 */
export async function applyAdapter(
  model: NativeModel,
  dir: string,
  opts: { baseBf16?: boolean } = {},
): Promise<LoraSettings> {
  if (model.loraSettings() !== null) throw new Error(`applyAdapter ${dir}: the model already has LoRA adapters`);
  const configFile = path.join(dir, ADAPTER_CONFIG);
  const { settings } = parseAdapterConfig(configFile, await readAdapterConfig(dir));
  const header = await readAdapterHeader(dir);
  const expected = expectedAdapterTensors(model.params(), settings);
  matchTensors(header, expected);
  // Off the main thread: rounding a large base to bf16 takes seconds.
  await model.enableLoraAsync(opts.baseBf16 ? { ...settings, baseBf16: true } : settings);
  const params = model.loraParams();
  checkNativeTable(params, expected, `applyAdapter ${dir}`);
  const data = model.loraData();
  const items = params.map((p) => {
    const t = header.tensors.get(p.name)!;
    return {
      fileOffset: t.fileOffset,
      name: t.name,
      dtype: t.dtype as TensorDtype,
      count: p.size,
      dst: data.subarray(p.offset, p.offset + p.size),
    };
  });
  await withInputPath(header.file, (opened) => loadAddon().readTensors(opened, items));
  return settings;
}
