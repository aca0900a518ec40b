// A child process that loads one model folder, as a LoRA worker would, and prints its peak resident memory
// (VmHWM) beside the peak it had before the load, as JSON. "direct": the base is read straight into bf16;
// "through-fp32": read in fp32, then rounded to bf16 when LoRA is switched on (both copies held at once).
import { loadAddon } from "../../native/js/addon.js";
import { loadModel } from "../../hf/hf_model.js";
import { highWaterMark } from "./high_water_mark.js";

export type LoadPath = "direct" | "through-fp32";

export interface LoadPeakResult {
  baselineBytes: number;
  peakBytes: number;
  /** bytes of the bf16 base the load ended with */
  baseBytes: number;
}

async function run(dir: string, how: LoadPath): Promise<LoadPeakResult> {
  loadAddon();
  const baselineBytes = highWaterMark();
  const { model } = await loadModel(dir, { baseBf16: how === "direct" });
  if (how === "through-fp32")
    await model.enableLoraAsync({
      rank: 2,
      alpha: 2,
      dropout: 0,
      targets: ["q_proj"],
      rslora: false,
      seed: 1,
      baseBf16: true,
    });
  const bits = model.baseDataBf16();
  if (!bits) throw new Error("the base is not held in bf16 after the load");
  return { baselineBytes, peakBytes: highWaterMark(), baseBytes: bits.byteLength };
}

const [dir, how] = process.argv.slice(2);
if (dir && (how === "direct" || how === "through-fp32")) console.log(JSON.stringify(await run(dir, how)));
