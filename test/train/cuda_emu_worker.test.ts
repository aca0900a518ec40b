// `ringtune worker --device cuda-emu` trains on the CUDA backend run by the CUDA emulator: a worker process
// reproduces a CPU worker's losses step by step (fp32; in bf16 within a stated bound), its checkpoints (weights and AdamW moments) resume on
// a CPU worker and the CPU's on it, and it shares a ring with a CPU worker. The device proof runs this file on
// a GPU (RINGTUNE_TEST_DEVICE=cuda, test/helpers/evidence_device.ts).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { trainingFixture } from "../helpers/cluster.js";
import { EMU, runOnWorkers as runJob } from "../helpers/device_rings.js";
import { assertSameLosses } from "../helpers/losses.js";
import { killAllWorkerProcesses } from "../helpers/worker_process.js";
import { evidenceSkip } from "../helpers/evidence_device.js";
import { ONE_HEAD_BYTE_LLAMA } from "../helpers/tiny_model.js";

after(killAllWorkerProcesses);

/** fp32 on two backends: the same maths in a different order of summation. */
const FP32_REL = 1e-5;
/** bf16 GEMMs and attention against the CPU's fp32 over 3 steps: measured 5.9e-5 under the emulator; 5x as the bound */
const BF16_LOSS_REL = 3e-4;

const runOnWorkers = async (flags: string[][], spec: Record<string, unknown>, dir: string) =>
  (await runJob(flags, spec, dir)).losses;

test(
  "a cuda-emu worker trains to a CPU worker's losses, and checkpoints resume across the two devices",
  { timeout: 600_000, skip: evidenceSkip() },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    writeFileSync(path.join(dir, "model.json"), JSON.stringify(ONE_HEAD_BYTE_LLAMA));
    // checksum_every: the device model's checksum runs (on the host copy of its state) at steps 5, 10, ...
    const spec = { ...baseSpec, workers: 1, max_steps: 20, save_every: 10, checksum_every: 5 };
    const cpu = await runOnWorkers([[]], { ...spec, output: "cpu" }, dir);
    const emu = await runOnWorkers([EMU], { ...spec, output: "emu" }, dir);
    assert.equal(cpu.size, 20);
    assertSameLosses(emu, cpu, FP32_REL);

    const checkpoint = (run: string) => path.join(dir, run, "checkpoints", "step-000010");
    const secondHalf = new Map([...cpu].filter(([step]) => step > 10));
    const emuToCpu = await runOnWorkers([[]], { ...spec, output: "emu-cpu", resume_from: checkpoint("emu") }, dir);
    assertSameLosses(emuToCpu, secondHalf, FP32_REL);
    const cpuToEmu = await runOnWorkers([EMU], { ...spec, output: "cpu-emu", resume_from: checkpoint("cpu") }, dir);
    assertSameLosses(cpuToEmu, secondHalf, FP32_REL);
  },
);

test(
  "a cuda-emu worker computing in bf16 (precision's default on a GPU) trains to a CPU worker's losses",
  { timeout: 600_000, skip: evidenceSkip() },
  async (t) => {
    const { dir, baseSpec } = trainingFixture();
    writeFileSync(path.join(dir, "model.json"), JSON.stringify(ONE_HEAD_BYTE_LLAMA));
    const spec = { ...baseSpec, workers: 1, max_steps: 3 };
    const cpu = await runOnWorkers([[]], { ...spec, output: "cpu" }, dir);
    const bf16 = await runOnWorkers([EMU], { ...spec, output: "bf16", precision: "bf16" }, dir);
    assertSameLosses(bf16, cpu, BF16_LOSS_REL);
    const worst = Math.max(...[...cpu].map(([step, want]) => Math.abs(bf16.get(step)! - want) / Math.abs(want)));
    t.diagnostic(`bf16 losses within ${worst} (relative) of the CPU's`);
    assert.ok(worst > FP32_REL, `losses within ${worst} of the CPU's: the worker computed in fp32, not bf16`);
  },
);

test(
  "a ring of one cuda-emu worker and one CPU worker trains to two CPU workers' losses",
  { timeout: 600_000, skip: evidenceSkip() },
  async () => {
    const { dir, baseSpec } = trainingFixture();
    writeFileSync(path.join(dir, "model.json"), JSON.stringify(ONE_HEAD_BYTE_LLAMA));
    // The gradient buckets are all-reduced while the backward goes on: each leaves the device as it is final.
    // Checksums every 5 steps: a ring that mixes devices updates its weights with the host's arithmetic on
    // every rank, so the copies stay the same bits.
    const spec = { ...baseSpec, workers: 2, max_steps: 20, checksum_every: 5 };
    const cpus = await runOnWorkers([[], []], { ...spec, output: "cpus" }, dir);
    const mixed = await runOnWorkers([EMU, []], { ...spec, output: "mixed" }, dir);
    assert.equal(cpus.size, 20);
    assertSameLosses(mixed, cpus, FP32_REL);
  },
);
