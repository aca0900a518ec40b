// A child process that builds one model and trains it as a worker would (full, LoRA on a bf16 base, or
// hybrid: full then LoRA), then prints its peak resident memory (VmHWM) beside the peak it had before the
// model existed, as JSON: the model's own peak is the difference, whatever Node and the BLAS library hold.
import { loadAddon, type LoraSettings, type NativeBatch, type NativeModel } from "../../native/js/addon.js";
import type { NativeModelConfig } from "../../native/js/addon.js";
import { highWaterMark } from "./high_water_mark.js";

export interface PeakRssJob {
  shape: NativeModelConfig;
  method: "full" | "lora" | "hybrid";
  lora: LoraSettings;
  rows: number;
  seqLen: number;
}

export interface PeakRssResult {
  /** VmHWM once the runtime, the addon and the BLAS threads' buffers are warm, before the model */
  baselineBytes: number;
  peakBytes: number;
}

function batchOf(rows: number, seqLen: number, vocab: number): NativeBatch {
  const n = rows * seqLen;
  const inputIds = Int32Array.from({ length: n }, (_, i) => (i * 7919) % vocab);
  const labels = Int32Array.from({ length: n }, (_, i) => inputIds[(i + 1) % n]!);
  const positionIds = Int32Array.from({ length: n }, (_, i) => i % seqLen);
  return { rows, seqLen, inputIds, labels, positionIds, segmentIds: new Int32Array(n) };
}

async function step(model: NativeModel, batch: NativeBatch): Promise<void> {
  await model.prepareTraining();
  await model.forwardBackward(batch, { backward: true, zeroGrads: true });
  await model.adamwStep({ lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 });
}

async function warmUp(shape: NativeModelConfig): Promise<void> {
  // A model of the same widths but one layer and a small vocabulary: every BLAS and OpenMP thread allocates
  // its buffers now, not inside the measured run.
  const tiny = await loadAddon().createModelAsync({ ...shape, numLayers: 1, vocabSize: 256 });
  await tiny.initRandom(1, 0.02);
  await step(tiny, batchOf(1, 32, 256));
}

async function run(job: PeakRssJob): Promise<PeakRssResult> {
  await warmUp(job.shape);
  const baselineBytes = highWaterMark();
  const batch = batchOf(job.rows, job.seqLen, job.shape.vocabSize);
  const lora = { ...job.lora, baseBf16: true };
  const model = await loadAddon().createModelAsync(job.shape, { baseBf16: job.method === "lora" });
  await model.initRandom(2, 0.02);
  if (job.method === "lora") await model.enableLoraAsync(lora);
  await step(model, batch);
  if (job.method === "hybrid") {
    await model.enableLoraAsync(lora);
    await step(model, batch);
  }
  return { baselineBytes, peakBytes: highWaterMark() };
}

const job = JSON.parse(process.argv[2] ?? "null") as PeakRssJob | null;
if (job) console.log(JSON.stringify(await run(job)));
