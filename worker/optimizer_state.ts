// AdamW state in a checkpoint: optimizer.safetensors holds both moments of every trainable parameter (the
// base weights, or the adapters under LoRA) under its name (`<name>.exp_avg`, `<name>.exp_avg_sq`, as
// PyTorch's state names them) and the step in metadata. Under ZeRO-1 the file is the same: the writer is
// given the moments gathered from every rank, and a reader keeps only its shard's pieces of them, so a
// checkpoint resumes on any worker count, sharded or not.
import path from "node:path";
import { loadAddon, type NativeModel, type ReadTensorItem } from "../native/js/addon.js";
import { readSafetensorsHeader, writeSafetensors, type WriteTensor } from "../hf/safetensors.js";
import { OPTIMIZER_FILE } from "../proto/mod.js";
import { withInputPath } from "../files/input_files.js";

/** `full`: the moments in the unsharded layout, gathered over the ring when this model holds a shard. */
export async function saveOptimizerState(
  model: NativeModel,
  dir: string,
  full?: { m: Float32Array; v: Float32Array },
): Promise<void> {
  if (!full && model.optimizerShard().length > 0)
    throw new Error("saveOptimizerState: the moments are sharded (ZeRO-1): gather them first");
  const { m, v } = full ?? model.optimizerData();
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

/**
 * Reads both moments straight into the model's optimizer buffers and restores the step. With a ZeRO-1
 * shard set, only the shard's pieces of each tensor are read, into their packed places.
 */
export async function loadOptimizerState(model: NativeModel, dir: string): Promise<number> {
  const file = path.join(dir, OPTIMIZER_FILE);
  const header = await readSafetensorsHeader(file);
  const { m, v } = model.optimizerData();
  const pieces = shardPieces(model.optimizerShard());
  const items: ReadTensorItem[] = [];
  for (const p of model.trainableParams()) {
    for (const [suffix, buf] of [
      ["exp_avg", m],
      ["exp_avg_sq", v],
    ] as const) {
      const t = header.tensors.get(`${p.name}.${suffix}`);
      if (!t) throw new Error(`${file}: missing tensor ${p.name}.${suffix}`);
      if (t.dtype !== "F32" || t.shape.join(",") !== p.shape.join(","))
        throw new Error(`${file}: tensor ${p.name}.${suffix} is ${t.dtype} [${t.shape}], expected F32 [${p.shape}]`);
      for (const piece of pieces ?? [{ offset: 0, size: Infinity, packed: 0 }]) {
        const lo = Math.max(piece.offset, p.offset);
        const hi = Math.min(piece.offset + piece.size, p.offset + p.size);
        if (lo >= hi) continue;
        const at = piece.packed + (lo - piece.offset);
        items.push({
          fileOffset: t.fileOffset + (lo - p.offset) * 4,
          name: `${p.name}.${suffix}`,
          firstIndex: lo - p.offset,
          dtype: "F32",
          count: hi - lo,
          dst: buf.subarray(at, at + hi - lo),
        });
      }
    }
  }
  await withInputPath(file, (opened) => loadAddon().readTensors(opened, items));
  const step = Number(header.metadata.step);
  if (!Number.isInteger(step) || step < 0) throw new Error(`${file}: metadata 'step' is missing or not an integer`);
  model.setStep(step);
  return step;
}

/** A shard's ranges with where each one's moments start in the packed buffers; null when unsharded. */
function shardPieces(ranges: [number, number][]): { offset: number; size: number; packed: number }[] | null {
  if (ranges.length === 0) return null;
  let packed = 0;
  return ranges.map(([offset, size]) => {
    const piece = { offset, size, packed };
    packed += size;
    return piece;
  });
}
