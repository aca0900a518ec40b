// AdamW state in a checkpoint: optimizer.safetensors holds both moments of every trainable parameter (the
// base weights, or the adapters under LoRA) under its name (`<name>.exp_avg`, `<name>.exp_avg_sq`, as
// PyTorch's state names them) and the step in metadata.
import path from "node:path";
import { loadAddon, type NativeModel, type TensorDtype } from "../native/js/addon.js";
import { readSafetensorsHeader, writeSafetensors, type WriteTensor } from "../native/js/safetensors.js";
import { OPTIMIZER_FILE } from "../proto/mod.js";

export async function saveOptimizerState(model: NativeModel, dir: string): Promise<void> {
  const { m, v } = model.optimizerData();
  const tensors: WriteTensor[] = [];
  for (const p of model.trainableParams()) {
    tensors.push({
      name: `${p.name}.exp_avg`,
      shape: p.shape,
      dtype: "F32",
      data: m.subarray(p.offset, p.offset + p.size),
    });
    tensors.push({
      name: `${p.name}.exp_avg_sq`,
      shape: p.shape,
      dtype: "F32",
      data: v.subarray(p.offset, p.offset + p.size),
    });
  }
  await writeSafetensors(path.join(dir, OPTIMIZER_FILE), tensors, { format: "pt", step: String(model.getStep()) });
}

/** Reads both moments straight into the model's optimizer buffers and restores the step. */
export async function loadOptimizerState(model: NativeModel, dir: string): Promise<number> {
  const file = path.join(dir, OPTIMIZER_FILE);
  const header = await readSafetensorsHeader(file);
  const { m, v } = model.optimizerData();
  const items: { fileOffset: number; dtype: TensorDtype; count: number; dst: Float32Array }[] = [];
  for (const p of model.trainableParams()) {
    for (const [suffix, buf] of [
      ["exp_avg", m],
      ["exp_avg_sq", v],
    ] as const) {
      const t = header.tensors.get(`${p.name}.${suffix}`);
      if (!t) throw new Error(`${file}: missing tensor ${p.name}.${suffix}`);
      if (t.dtype !== "F32" || t.shape.join(",") !== p.shape.join(","))
        throw new Error(`${file}: tensor ${p.name}.${suffix} is ${t.dtype} [${t.shape}], expected F32 [${p.shape}]`);
      items.push({
        fileOffset: t.fileOffset,
        dtype: "F32",
        count: p.size,
        dst: buf.subarray(p.offset, p.offset + p.size),
      });
    }
  }
  await loadAddon().readTensors(file, items);
  const step = Number(header.metadata.step);
  if (!Number.isInteger(step) || step < 0) throw new Error(`${file}: metadata 'step' is missing or not an integer`);
  model.setStep(step);
  return step;
}
