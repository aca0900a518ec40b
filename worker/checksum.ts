// A checksum of everything that must stay identical across the ranks of a ring: every rank applies the same
// update to the same all-reduced gradient, so the bits must match; the coordinator compares these
// periodically. It covers the base weights (trained in full training and in a hybrid job's first phase,
// frozen under LoRA but still required equal), the adapters once LoRA is on, and the AdamW moments of
// whatever is trained. The native core hashes them off the main thread: for a model of billions of
// parameters the pass takes seconds, during which heartbeats must keep flowing.
import type { NativeModel } from "../native/js/addon.js";

export type ChecksummedModel = Pick<NativeModel, "checksum">;

export function trainingStateChecksum(model: ChecksummedModel): Promise<string> {
  return model.checksum();
}
