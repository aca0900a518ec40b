// A Hugging Face model folder in and out of the native core: config.json, the weights
// (model.safetensors, or shards listed by model.safetensors.index.json), generation_config.json and
// the tokenizer files. Every tensor is checked against the model's parameter table before any data
// moves; data then goes from the file straight into the flat parameter buffer (no JS copies).
import { readFile, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { loadAddon } from "../native/js/addon.js";
import type {
  ComputePrecision,
  ModelDeviceName,
  NativeModel,
  ParamInfo,
  ReadTensorItem,
  TensorDtype,
} from "../native/js/addon.js";
import { readHfConfig, writeConfig, writeJsonAtomic } from "./hf_config.js";
import type { HfConfig } from "./hf_config.js";
import { generationConfigJson, readGenerationConfig } from "./generation_config.js";
import { makeOutputDir, writeOutputFileAtomically } from "../files/output_files.js";
import { inputPresent, readInputBytes, readRegularFile, withInputPath } from "../files/input_files.js";
import { readSafetensorsHeader, writeSafetensors } from "./safetensors.js";
import type { SafetensorsHeader, TensorEntry, WriteTensor } from "./safetensors.js";
import { CorruptFileError, MissingTensorError, ShapeMismatchError, UnexpectedTensorError } from "./errors.js";

export const SINGLE_FILE = "model.safetensors";
export const INDEX_FILE = "model.safetensors.index.json";
const SHARD_NAME = /^model-\d{5}-of-\d{5}\.safetensors$/;

/** Files a tokenizer may consist of (fast, sentencepiece or BPE vocab/merges); copied when present. */
export const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "tokenizer.model",
  "vocab.json",
  "merges.txt",
  "added_tokens.json",
] as const;

export interface LoadedModel {
  dir: string;
  config: HfConfig;
  model: NativeModel;
}

interface Located {
  header: SafetensorsHeader;
  entry: TensorEntry;
}

/** Every tensor of the folder's weight files, and the file to name when one is missing. */
interface WeightFiles {
  describedBy: string;
  tensors: Map<string, Located>;
}

const indexSchema = z.object({
  metadata: z.record(z.string(), z.unknown()).optional(),
  weight_map: z.record(z.string(), z.string()),
});

async function readWeightFiles(dir: string): Promise<WeightFiles> {
  const single = path.join(dir, SINGLE_FILE);
  if (inputPresent(single)) {
    const header = await readSafetensorsHeader(single);
    const tensors = new Map<string, Located>();
    for (const entry of header.tensors.values()) tensors.set(entry.name, { header, entry });
    return { describedBy: single, tensors };
  }
  const indexFile = path.join(dir, INDEX_FILE);
  if (!inputPresent(indexFile)) {
    throw new CorruptFileError(dir, `no ${SINGLE_FILE} and no ${INDEX_FILE}: not a model folder`);
  }
  let json: unknown;
  try {
    json = JSON.parse(readRegularFile(indexFile));
  } catch (err) {
    throw new CorruptFileError(indexFile, `not valid JSON (${(err as Error).message})`, { cause: err });
  }
  const parsed = indexSchema.safeParse(json);
  if (!parsed.success) {
    throw new CorruptFileError(
      indexFile,
      parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; "),
    );
  }
  const weightMap = parsed.data.weight_map;
  const tensors = new Map<string, Located>();
  for (const shard of new Set(Object.values(weightMap))) {
    // A shard must sit in the folder itself: the index must not point elsewhere on the disk.
    if (path.basename(shard) !== shard || shard === "." || shard === "..") {
      throw new CorruptFileError(indexFile, `shard name ${JSON.stringify(shard)} is not a file name in the folder`);
    }
    const file = path.join(dir, shard);
    if (!inputPresent(file)) throw new CorruptFileError(indexFile, `lists shard ${shard}, which does not exist`);
    const header = await readSafetensorsHeader(file);
    for (const entry of header.tensors.values()) {
      const seen = tensors.get(entry.name);
      if (seen) throw new CorruptFileError(file, `tensor ${entry.name} is also in ${seen.header.file}`);
      tensors.set(entry.name, { header, entry });
    }
  }
  for (const [name, shard] of Object.entries(weightMap)) {
    const found = tensors.get(name);
    if (!found || path.basename(found.header.file) !== shard) {
      throw new MissingTensorError(indexFile, `maps tensor ${name} to ${shard}, which does not hold it`);
    }
  }
  return { describedBy: indexFile, tensors };
}

const fmt = (shape: readonly number[]) => `[${shape.join(",")}]`;

/**
 * Tensors HF itself drops when loading: the LM head of a tied model (it is re-tied to the embedding)
 * and the RoPE inverse frequencies some older Llama checkpoints saved as buffers.
 */
function ignoredByHf(name: string, config: HfConfig): boolean {
  if (name === "lm_head.weight" && config.native.tieWordEmbeddings) return true;
  return /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/.test(name);
}

/** Pairs each parameter with its tensor, or throws naming the first missing, misshapen or extra one. */
function matchParams(params: ParamInfo[], files: WeightFiles, config: HfConfig): Map<ParamInfo, Located> {
  const missing = params.filter((p) => !files.tensors.has(p.name));
  if (missing.length > 0) {
    const first = missing[0]!;
    const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : "";
    throw new MissingTensorError(files.describedBy, `missing tensor ${first.name} (shape ${fmt(first.shape)})${more}`);
  }
  const out = new Map<ParamInfo, Located>();
  for (const p of params) {
    const t = files.tensors.get(p.name)!;
    const same = t.entry.shape.length === p.shape.length && t.entry.shape.every((d, i) => d === p.shape[i]);
    if (!same) {
      throw new ShapeMismatchError(
        t.header.file,
        `tensor ${p.name} has shape ${fmt(t.entry.shape)}, expected ${fmt(p.shape)}`,
      );
    }
    out.set(p, t);
  }
  const known = new Set(params.map((p) => p.name));
  for (const [name, t] of files.tensors) {
    if (!known.has(name) && !ignoredByHf(name, config)) {
      throw new UnexpectedTensorError(
        t.header.file,
        `unexpected tensor ${name} (shape ${fmt(t.entry.shape)}): the ${config.architecture} config has no such parameter`,
      );
    }
  }
  return out;
}

/** What a long model operation is doing now, for a status line: "allocating", "loading weights 37%", ... */
export type ActivityReport = (activity: string) => void;

export interface BuildOptions {
  onActivity?: ActivityReport;
  /**
   * Create the base frozen in bf16 (a LoRA job's), so it is never held in fp32: initModel draws it in bf16,
   * loadModel reads bf16 tensors straight into it and rounds wider ones as they are read.
   */
  baseBf16?: boolean;
  /** The native model's device: "cuda:N" on GPU N, "cuda-emu" over the CUDA backend on the CUDA emulator. */
  device?: ModelDeviceName;
  /** How a CUDA device computes (default fp32); the CPU computes in fp32 whatever this says. */
  precision?: ComputePrecision;
}

/** Loads a HF model folder: config, weights (single or sharded), checked tensor by tensor. */
export async function loadModel(dir: string, opts: BuildOptions = {}): Promise<LoadedModel> {
  const report = opts.onActivity ?? (() => {});
  const config = await readHfConfig(path.join(dir, "config.json"));
  const files = await readWeightFiles(dir);
  report("allocating");
  const model = await loadAddon().createModelAsync(config.native, {
    baseBf16: opts.baseBf16 ?? false,
    device: opts.device ?? "cpu",
    precision: opts.precision ?? "fp32",
  });
  const matched = matchParams(model.params(), files, config);
  const data = model.baseDataBf16() ?? model.paramData();
  const byFile = new Map<string, ReadTensorItem[]>();
  for (const [p, t] of matched) {
    const items = byFile.get(t.header.file) ?? [];
    items.push({
      fileOffset: t.entry.fileOffset,
      name: t.entry.name,
      dtype: t.entry.dtype as TensorDtype,
      count: p.size,
      dst: data.subarray(p.offset, p.offset + p.size),
    });
    byFile.set(t.header.file, items);
  }
  const bytesOf = (items: { dtype: TensorDtype; count: number }[]) =>
    items.reduce((s, it) => s + it.count * (it.dtype === "F32" ? 4 : 2), 0);
  const totalBytes = [...byFile.values()].reduce((s, items) => s + bytesOf(items), 0);
  let before = 0;
  let shown = -1;
  const progress = (fileBytes: number) => {
    const pct = Math.floor((100 * (before + fileBytes)) / Math.max(1, totalBytes));
    if (pct !== shown) report(`loading weights ${(shown = pct)}%`);
  };
  report("loading weights 0%");
  // One file at a time: shards of a large model are read by native threads already.
  for (const [file, items] of byFile) {
    await withInputPath(file, (opened) => loadAddon().readTensors(opened, items, progress));
    before += bytesOf(items);
  }
  return { dir, config, model };
}

/** A fresh model from a config: HF-style random init with the config's initializer_range. */
export async function initModel(config: HfConfig, seed: number, opts: BuildOptions = {}): Promise<NativeModel> {
  const report = opts.onActivity ?? (() => {});
  report("allocating");
  const model = await loadAddon().createModelAsync(config.native, {
    baseBf16: opts.baseBf16 ?? false,
    device: opts.device ?? "cpu",
    precision: opts.precision ?? "fp32",
  });
  report("initialising");
  await model.initRandom(seed, config.initializerRange);
  return model;
}

export interface SaveOptions {
  dtype: "F32" | "BF16";
  /** split the weights into shards of at most this many bytes (a larger tensor gets a shard alone) */
  shardBytes?: number;
  /** a model folder whose tokenizer files and generation_config.json are copied */
  sourceDir?: string;
}

/** Shard file names as transformers writes them: model-00001-of-00003.safetensors. */
function shardName(i: number, n: number): string {
  return `model-${String(i + 1).padStart(5, "0")}-of-${String(n).padStart(5, "0")}.safetensors`;
}

function splitShards(tensors: WriteTensor[], bytesPer: number, limit: number): WriteTensor[][] {
  const shards: WriteTensor[][] = [];
  let cur: WriteTensor[] = [];
  let size = 0;
  for (const t of tensors) {
    const b = t.data.length * bytesPer;
    if (cur.length > 0 && size + b > limit) {
      shards.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(t);
    size += b;
  }
  if (cur.length > 0) shards.push(cur);
  return shards;
}

/**
 * Removes weight files an earlier save left in `dir` that the new save did not write (`kept`): a
 * loader would otherwise pick up a stale model.safetensors or an old index's extra shards.
 */
async function removeStaleWeights(dir: string, kept: Set<string>): Promise<void> {
  if (!kept.has(SINGLE_FILE)) await rm(path.join(dir, SINGLE_FILE), { force: true });
  const indexFile = path.join(dir, INDEX_FILE);
  if (!existsSync(indexFile)) return;
  try {
    const old = indexSchema.parse(JSON.parse(await readFile(indexFile, "utf8")));
    for (const shard of new Set(Object.values(old.weight_map))) {
      if (SHARD_NAME.test(shard) && !kept.has(shard)) await rm(path.join(dir, shard), { force: true });
    }
  } catch {
    // an unreadable old index names no files we could safely delete; replacing the index is enough
  }
  if (!kept.has(INDEX_FILE)) await rm(indexFile, { force: true });
}

/** Writes `model` as a HF folder: config.json, generation_config.json, weights, tokenizer files. */
export async function saveModel(model: NativeModel, config: HfConfig, dir: string, opts: SaveOptions): Promise<void> {
  await makeOutputDir(dir);
  const data = model.baseDataBf16() ?? model.paramData();
  const tensors: WriteTensor[] = model.params().map((p) => ({
    name: p.name,
    shape: p.shape,
    dtype: opts.dtype,
    data: data.subarray(p.offset, p.offset + p.size),
  }));
  const bytesPer = opts.dtype === "F32" ? 4 : 2;
  const total: number = tensors.reduce((s, t) => s + t.data.length * bytesPer, 0);
  if (opts.shardBytes !== undefined && total > opts.shardBytes) {
    const shards = splitShards(tensors, bytesPer, opts.shardBytes);
    const weightMap: Record<string, string> = {};
    for (const [i, shard] of shards.entries()) {
      const name = shardName(i, shards.length);
      await writeSafetensors(path.join(dir, name), shard);
      for (const t of shard) weightMap[t.name] = name;
    }
    const sorted = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    await removeStaleWeights(dir, new Set([...Object.values(weightMap), INDEX_FILE]));
    // The index goes last: until it exists no reader sees a half-written set of shards.
    await writeJsonAtomic(path.join(dir, INDEX_FILE), { metadata: { total_size: total }, weight_map: sorted });
  } else {
    await writeSafetensors(path.join(dir, SINGLE_FILE), tensors);
    await removeStaleWeights(dir, new Set([SINGLE_FILE]));
  }
  await writeConfig(path.join(dir, "config.json"), config, opts.dtype);
  const sourceGeneration = opts.sourceDir ? await readGenerationConfig(opts.sourceDir) : null;
  await writeJsonAtomic(path.join(dir, "generation_config.json"), generationConfigJson(config, sourceGeneration));
  if (opts.sourceDir && path.resolve(opts.sourceDir) !== path.resolve(dir)) {
    for (const f of TOKENIZER_FILES) {
      const src = path.join(opts.sourceDir, f);
      if (inputPresent(src)) await writeOutputFileAtomically(path.join(dir, f), readInputBytes(src));
    }
  }
}
