// Shared by the LoRA tests: a tiny base model, adapter folders written in TS (no native LoRA needed),
// batches, and LoRA models with nonzero B (B starts at 0, which would make every comparison trivial).
import { writeFileSync } from "node:fs";
import path from "node:path";
import type { LoraSettings, NativeBatch, NativeModel } from "../../native/js/addon.js";
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapterConfigJson, expectedAdapterTensors } from "../../hf/peft_adapter.js";
import type { RawTensor } from "./native_files.js";
import { f32Bytes, hfParamShapes, rawSafetensors, tempDir, tinyLlamaConfig, writeJson } from "./native_files.js";

export { tempDir, tinyLlamaConfig, writeJson };

/** The tiny Llama's base parameter table, as NativeModel.params() lists names and shapes. */
export function tinyBaseParams(cfg: Record<string, unknown> = tinyLlamaConfig()): { name: string; shape: number[] }[] {
  return [...hfParamShapes(cfg)].map(([name, shape]) => ({ name, shape }));
}

export const ALL_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

export const SETTINGS: LoraSettings = {
  rank: 4,
  alpha: 8,
  dropout: 0,
  targets: ["q_proj", "v_proj", "down_proj"],
  rslora: false,
  seed: 7,
};

/** Deterministic values in about [-0.5, 0.5), distinct per name, so a tensor in the wrong slot shows. */
export function valuesFor(name: string, count: number, scale = 1): Float32Array {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) % 10007;
  return Float32Array.from({ length: count }, (_, i) => (Math.round(Math.sin(h + i * 0.71) * 128) / 256) * scale);
}

/**
 * An adapter folder as PEFT would write it for the tiny model, byte by byte in TS. `editConfig` and
 * `editTensors` break it for the refusal tests.
 */
export function craftAdapter(
  opts: {
    settings?: LoraSettings;
    cfg?: Record<string, unknown>;
    editConfig?: (c: Record<string, unknown>) => Record<string, unknown>;
    editTensors?: (t: RawTensor[]) => RawTensor[];
  } = {},
): string {
  const settings = opts.settings ?? SETTINGS;
  const dir = tempDir("ringtune-adapter-");
  const config = adapterConfigJson(settings, "tiny-llama");
  writeJson(path.join(dir, ADAPTER_CONFIG), opts.editConfig ? opts.editConfig(config) : config);
  const expected = expectedAdapterTensors(tinyBaseParams(opts.cfg), settings);
  const tensors: RawTensor[] = [...expected].map(([name, shape]) => ({
    name,
    dtype: "F32",
    shape,
    bytes: f32Bytes(valuesFor(name, shape[0]! * shape[1]!)),
  }));
  writeFileSync(
    path.join(dir, ADAPTER_WEIGHTS),
    rawSafetensors(opts.editTensors ? opts.editTensors(tensors) : tensors),
  );
  return dir;
}

/** Two rows, the second packed with two segments, every position a target but the first of each segment. */
export function tinyBatch(vocab = 32): NativeBatch {
  const rows = 2,
    seqLen = 6,
    n = rows * seqLen;
  const inputIds = Int32Array.from({ length: n }, (_, i) => (i * 7 + 3) % vocab);
  const labels = Int32Array.from({ length: n }, (_, i) => (i * 5 + 1) % vocab);
  const positionIds = Int32Array.from([0, 1, 2, 3, 4, 5, 0, 1, 2, 0, 1, 2]);
  const segmentIds = Int32Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
  return { rows, seqLen, inputIds, labels, positionIds, segmentIds };
}

export async function logitsOf(model: NativeModel, batch: NativeBatch = tinyBatch()): Promise<Float32Array> {
  await model.forwardBackward(batch, { backward: false, keepLogits: true });
  return Float32Array.from(model.logits());
}

/** Sets every lora_B (and A, to values of PEFT's init size) to deterministic nonzero values. */
export function randomizeAdapters(model: NativeModel, scale = 0.2): void {
  const data = model.loraData();
  for (const p of model.loraParams()) data.set(valuesFor(p.name, p.size, scale), p.offset);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assertSameLength(a, b);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function assertSameLength(a: ArrayLike<number>, b: ArrayLike<number>): void {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
}
