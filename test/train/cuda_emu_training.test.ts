// Training modes beyond a full fp32 job on `ringtune worker --device cuda-emu` (the CUDA backend on the
// emulator), each against CPU workers: a LoRA job on a frozen bf16 base with dropout saves the CPU's adapter, a
// hybrid job switches and ends at the CPU's adapter, and rings that mix a cuda-emu worker with a CPU worker
// train under ZeRO-1 and under sequence parallelism to two CPU workers' losses, with their weight checksums
// compared every few steps; and, in precision bf16 at head dim 64 (the ring-attention blocks on the tensor-core
// kernels), within bf16's bound of them.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { trainingFixture } from "../helpers/cluster.js";
import { EMU, runOnWorkers } from "../helpers/device_rings.js";
import { assertSameLosses } from "../helpers/losses.js";
import { killAllWorkerProcesses } from "../helpers/worker_process.js";
import { loadAddon } from "../../native/js/addon.js";
import { ONE_HEAD_64_BYTE_LLAMA, ONE_HEAD_BYTE_LLAMA } from "../helpers/tiny_model.js";
import { readSafetensorsHeader, readTensorsF32 } from "../../hf/safetensors.js";

after(killAllWorkerProcesses);

/** fp32 on two backends: the same maths in a different order of summation. */
const FP32_REL = 1e-5;
/** a hybrid job's adapters, relative to each tensor's largest value (see the test) */
const HYBRID_REL = 1e-4;
/** bf16 on the cuda-emu rank of an SP=2 ring against two fp32 CPU ranks over 4 steps: measured 1.0e-4; 5x */
const SP_BF16_LOSS_REL = 5e-4;
const skip = !loadAddon().cudaEmu && "the addon does not link the CUDA emulator";

function fixture(): { dir: string; spec: Record<string, unknown> } {
  const { dir, baseSpec } = trainingFixture();
  writeFileSync(path.join(dir, "model.json"), JSON.stringify(ONE_HEAD_BYTE_LLAMA));
  // Few short rows: the emulator runs each CUDA thread on the CPU. eps 1e-4: AdamW's update is lr * m / (sqrt(v) +
  // eps), so with eps far below a gradient's rounding error the update of a near-zero gradient (the adapters' B
  // starts at 0) follows that error, and two backends' weights would part by a step's size, not by rounding.
  const spec = { ...baseSpec, max_steps: 4, seq_len: 32, global_batch_rows: 4, micro_batch_rows: 2, eps: 1e-4 };
  return { dir, spec: { ...spec, checksum_every: 2, lr: 1e-2 } };
}

/** Every tensor of the two saved adapters agrees within rel * (the tensor's largest magnitude). */
async function assertSameAdapter(got: string, want: string, rel: number): Promise<string> {
  const file = (out: string) => path.join(out, "final", "adapter", "adapter_model.safetensors");
  const a = await readTensorsF32(await readSafetensorsHeader(file(got)));
  const b = await readTensorsF32(await readSafetensorsHeader(file(want)));
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), "the same adapter tensors");
  let worst = 0;
  for (const [name, w] of b) {
    const g = a.get(name)!;
    const scale = Math.max(...w.map(Math.abs));
    assert.ok(scale > 0, `${name} trained away from zero`);
    for (let i = 0; i < w.length; i++) {
      const d = Math.abs(g[i]! - w[i]!) / scale;
      assert.ok(d <= rel, `${name}[${i}]: ${g[i]} vs CPU ${w[i]}`);
      worst = Math.max(worst, d);
    }
  }
  return `max difference ${worst.toExponential(2)} of each tensor's largest magnitude`;
}

test(
  "a LoRA job on a bf16 base with dropout, and a hybrid job, save the CPU's adapter on a cuda-emu worker",
  { timeout: 1_800_000, skip },
  async (t) => {
    const { dir, spec } = fixture();
    const lora = { ...spec, workers: 1, method: "lora", lora: { rank: 4, alpha: 8, dropout: 0.1, targets: "all" } };
    const cpu = await runOnWorkers([[]], { ...lora, output: "lora-cpu" }, dir);
    const emu = await runOnWorkers([EMU], { ...lora, output: "lora-emu" }, dir);
    assertSameLosses(emu.losses, cpu.losses, FP32_REL);
    t.diagnostic(`LoRA adapter: ${await assertSameAdapter(emu.output, cpu.output, FP32_REL)}`);

    const hybrid = { ...spec, workers: 1, method: "hybrid", full_fraction: 0.5, lora: { rank: 4, alpha: 8 } };
    const hcpu = await runOnWorkers([[]], { ...hybrid, output: "hybrid-cpu" }, dir);
    const hemu = await runOnWorkers([EMU], { ...hybrid, output: "hybrid-emu" }, dir);
    assertSameLosses(hemu.losses, hcpu.losses, FP32_REL);
    // The adapters start from a base each backend trained for two full steps: the base's fp32 rounding enters
    // their first gradients, and AdamW normalises B's near-zero ones. Measured 4.4e-5 of a tensor's largest value.
    t.diagnostic(`hybrid adapter: ${await assertSameAdapter(hemu.output, hcpu.output, HYBRID_REL)}`);
  },
);

test(
  "rings of a cuda-emu and a CPU worker under ZeRO-1 and under sequence parallelism train to two CPU workers' losses, in bf16 within its bound",
  { timeout: 1_800_000, skip },
  async (t) => {
    const { dir, spec } = fixture();
    // Sequence parallelism at head dim 64: in bf16 the cuda-emu rank's ring-attention blocks run on the
    // tensor-core kernels (fp32 keeps the SIMT blocks, as at head dim 32).
    writeFileSync(path.join(dir, "model64.json"), JSON.stringify(ONE_HEAD_64_BYTE_LLAMA));
    const head64 = { model: { init: { config: "model64.json", seed: 3 } } };
    for (const [name, keys] of [
      ["zero1", { zero: 1 }],
      ["sp2", { sequence_parallel: 2, ...head64 }],
    ] as const) {
      const job = { ...spec, ...keys, workers: 2 };
      const cpus = await runOnWorkers([[], []], { ...job, output: `${name}-cpus` }, dir);
      const mixed = await runOnWorkers([EMU, []], { ...job, output: `${name}-mixed` }, dir);
      assert.equal(cpus.losses.size, 4, name);
      assertSameLosses(mixed.losses, cpus.losses, FP32_REL);
      if (name !== "sp2") continue;
      const bf16 = await runOnWorkers([EMU, []], { ...job, output: "sp2-bf16", precision: "bf16" }, dir);
      assertSameLosses(bf16.losses, cpus.losses, SP_BF16_LOSS_REL);
      const worst = Math.max(...[...cpus.losses].map(([s, want]) => Math.abs(bf16.losses.get(s)! - want) / want));
      t.diagnostic(`SP=2 in bf16: losses within ${worst.toExponential(2)} (relative) of the CPU ring's`);
      assert.ok(worst > FP32_REL, `losses within ${worst} of the CPU ring's: the cuda-emu rank computed in fp32`);
    }
  },
);
