// A checksum of everything that must stay identical across the ranks of a ring: every rank applies the same
// update to the same all-reduced gradient, so the bits must match; the coordinator compares these
// periodically. It covers the base weights (trained in full training and in a hybrid job's first phase,
// frozen under LoRA but still required equal), the adapters once LoRA is on, and the AdamW moments of
// whatever is trained. One linear pass over about 3x the trainable parameters costs far less than the
// step's forward and backward over them, so the moments are included.
import type { NativeModel } from "../native/js/addon.js";

export type ChecksummedModel = Pick<NativeModel, "paramData" | "loraSettings" | "loraData" | "optimizerData">;

/** The buffers the checksum covers, in a fixed order. */
export function checksummedBuffers(model: ChecksummedModel): Float32Array[] {
  const { m, v } = model.optimizerData();
  const adapters = model.loraSettings() ? [model.loraData()] : [];
  return [model.paramData(), ...adapters, m, v];
}

export function trainingStateChecksum(model: ChecksummedModel): string {
  return bitsChecksum(checksummedBuffers(model));
}

/** A checksum of the bits of the buffers, taken as one sequence (the order matters). */
export function bitsChecksum(buffers: Float32Array[]): string {
  // Two independent 32-bit multiply-xor lanes: cheap, and any flipped bit changes the result.
  let a = 0x811c9dc5 | 0;
  let b = 0x9e3779b9 | 0;
  let i = 0;
  for (const buf of buffers) {
    const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.length);
    for (let j = 0; j < words.length; j++, i++) {
      const w = words[j]!;
      a = Math.imul(a ^ w, 0x01000193);
      b = Math.imul(b ^ (w + i), 0x85ebca6b) ^ (b >>> 13);
    }
  }
  return (a >>> 0).toString(16).padStart(8, "0") + (b >>> 0).toString(16).padStart(8, "0");
}
