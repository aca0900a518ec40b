// A GPU worker's rank in precision bf16 holds a bf16 compute copy of what trains beside the fp32 master
// weights, gradients and moments; the coordinator counts it for workers that compute on a GPU (or the CUDA
// emulator) and refuses a job that cannot fit the GPU, naming the numbers and the device.
import { test } from "node:test";
import assert from "node:assert/strict";
import { qwenShape } from "../../bench/model_shapes.js";
import { estimateMemory, type EstimateInputs } from "../../spec/memory_estimate.js";
import { memoryRefusal, workersThatFit } from "../../coordinator/jobs/memory_fit.js";
import { estimateJobMemory } from "../../spec/job_memory.js";
import { parseSpec } from "../../spec/load.js";

const QWEN_05B = qwenShape("0.5b");
const PARAMS_05B = 494_032_768; // published: Qwen2.5-0.5B
const ADAPTERS_05B = 8_798_208; // PEFT's count for rank 16 on every linear layer
const ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
const inputs = (over: Partial<EstimateInputs> = {}): EstimateInputs => ({
  method: "full",
  seqLen: 512,
  microBatchRows: [1],
  evaluates: false,
  threads: 4,
  ...over,
});

test("on a GPU in bf16 the estimate adds 2 bytes per trained weight; fp32 and the CPU add nothing", () => {
  const cpu = estimateMemory(QWEN_05B, inputs());
  const gpu = estimateMemory(QWEN_05B, inputs({ device: "gpu" }));
  assert.equal(gpu.computeCopy, 2 * PARAMS_05B);
  assert.equal(gpu.total - cpu.total, 2 * PARAMS_05B);
  assert.equal(cpu.computeCopy, 0);
  assert.equal(estimateMemory(QWEN_05B, inputs({ device: "gpu", precision: "fp32" })).total, cpu.total);
  // LoRA: the bf16 base computes as it is; only the adapters get a compute copy.
  const lora = { rank: 16, targets: ALL, dropout: 0, basePrecision: "bf16" as const };
  const loraCpu = estimateMemory(QWEN_05B, inputs({ method: "lora", lora }));
  const loraGpu = estimateMemory(QWEN_05B, inputs({ method: "lora", lora, device: "gpu" }));
  assert.equal(loraGpu.total - loraCpu.total, 2 * ADAPTERS_05B);
  // A frozen base kept in fp32 is read through a bf16 copy too.
  const fp32Base = { ...lora, basePrecision: "fp32" as const };
  const fp32Cpu = estimateMemory(QWEN_05B, inputs({ method: "lora", lora: fp32Base }));
  const fp32Gpu = estimateMemory(QWEN_05B, inputs({ method: "lora", lora: fp32Base, device: "gpu" }));
  assert.equal(fp32Gpu.total - fp32Cpu.total, 2 * ADAPTERS_05B + 2 * PARAMS_05B);
});

test("a job that fits a CPU worker's memory but not a GPU's (with its compute copy) is refused naming the GPU", () => {
  const spec = parseSpec(
    { model: { init: { config: "m.json" } }, data: [{ path: "d.jsonl" }], seq_len: 64, max_steps: 1 },
    "t.yaml",
    "/tmp",
  );
  const cpuNeed = estimateJobMemory(spec, QWEN_05B, 4, "cpu").total;
  const gpuNeed = estimateJobMemory(spec, QWEN_05B, 4, "cuda").total;
  assert.equal(gpuNeed - cpuNeed, 2 * PARAMS_05B);
  const memory = cpuNeed + PARAMS_05B; // between the two
  const cpuWorker = { id: "w-cpu", memoryBytes: memory, cores: 4, device: "cpu" as const };
  const gpuWorker = { id: "w-gpu", memoryBytes: memory, cores: 4, device: "cuda" as const };
  assert.deepEqual(
    workersThatFit(spec, QWEN_05B, [cpuWorker, gpuWorker]).map((w) => w.id),
    ["w-cpu"],
  );
  assert.equal(memoryRefusal(spec, QWEN_05B, [cpuWorker]), undefined);
  const refusal = memoryRefusal(spec, QWEN_05B, [gpuWorker]);
  assert.match(refusal ?? "", /needs [\d.]+ GiB per rank \(params [\d.]+, .*, bf16 compute copy 0\.9\)/);
  assert.match(refusal ?? "", /w-gpu has [\d.]+ GiB of cuda memory/);
  // precision fp32 computes from the master copy: the same worker then fits
  assert.equal(memoryRefusal({ ...spec, precision: "fp32" }, QWEN_05B, [gpuWorker]), undefined);
});
