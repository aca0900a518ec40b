// Greedy generation of every eval prompt on one model (what a worker runs for the generation eval).
// One prompt at a time; each call runs off the main thread in the native core.
import type { NativeModel } from "../../native/js/addon.js";

export async function generateAll(
  model: NativeModel,
  prompts: Int32Array[],
  maxNew: number,
  eosIds: Int32Array,
): Promise<Int32Array[]> {
  const out: Int32Array[] = [];
  for (const promptIds of prompts) {
    out.push(await model.generate({ promptIds, maxNew, temperature: 0, topP: 1, seed: 0, eosIds }));
  }
  return out;
}
