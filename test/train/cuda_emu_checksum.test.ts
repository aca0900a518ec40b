// The weight checksum of a ring that mixes devices. A GPU rank and a CPU rank given the same all-reduced
// gradient would round AdamW differently (fused multiply-adds, the gradient norm's summation order), so their
// weights would part in the last bits and the exact checksum would stop the job. With hostUpdate the device
// model updates host copies with the CPU's arithmetic and sends them back: its weights and moments are then the
// CPU rank's bits, step after step, and a one-bit divergence planted in either is caught.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadAddon, type AdamWOptions, type NativeModel } from "../../native/js/addon.js";
import { parseHfConfig } from "../../hf/hf_config.js";
import { SETTINGS, tinyBatch, tinyLlamaConfig } from "../helpers/lora_adapters.js";

const skip = !loadAddon().cudaEmu && "the addon does not link the CUDA emulator";
// One head of 32: a head size the CUDA attention kernels take.
const config = parseHfConfig(tinyLlamaConfig({ hidden_size: 32, num_attention_heads: 1, num_key_value_heads: 1 }), "c");
// Clipping active at every step: the clip factor comes from the gradient norm, which the two backends sum in
// different orders.
const ADAMW: AdamWOptions = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 1e-3 };

/** A CPU model and a cuda-emu model with the same weights (and adapters when `lora`). */
async function pair(lora: boolean): Promise<{ cpu: NativeModel; emu: NativeModel }> {
  const addon = loadAddon();
  const cpu = await addon.createModelAsync(config.native);
  const emu = await addon.createModelAsync(config.native, { device: "cuda-emu" });
  for (const m of [cpu, emu]) {
    await m.initRandom(5, 0.2);
    if (lora) await m.enableLoraAsync({ ...SETTINGS, dropout: 0.1 });
  }
  return { cpu, emu };
}

/** Steps where both ranks apply the CPU rank's gradient (what the all-reduce gives every rank). */
async function stepTogether(cpu: NativeModel, emu: NativeModel, steps: number): Promise<void> {
  for (let s = 0; s < steps; s++) {
    await cpu.forwardBackward(tinyBatch(), { backward: true, zeroGrads: true });
    await emu.forwardBackward(tinyBatch(), { backward: true, zeroGrads: true });
    emu.gradData().set(cpu.gradData());
    const a = await cpu.adamwStep(ADAMW);
    const b = await emu.adamwStep({ ...ADAMW, hostUpdate: true });
    assert.equal(b.gradNorm, a.gradNorm, `step ${s}: the same gradient norm`);
    assert.equal(await emu.checksum(), await cpu.checksum(), `step ${s}: the same bits on both devices`);
  }
}

function flipLowestBit(buf: Float32Array, index: number): void {
  new Uint32Array(buf.buffer, buf.byteOffset, buf.length)[index]! ^= 1;
}

test(
  "full training: a cuda-emu rank with hostUpdate keeps a CPU rank's bits; a planted one-bit divergence shows",
  { skip },
  async () => {
    const { cpu, emu } = await pair(false);
    await stepTogether(cpu, emu, 3);
    flipLowestBit(emu.paramData(), emu.params().at(-1)!.offset);
    assert.notEqual(await emu.checksum(), await cpu.checksum(), "a weight that differs in its lowest bit");
  },
);

test(
  "LoRA: a cuda-emu rank with hostUpdate keeps a CPU rank's adapters and moments; a planted divergence shows",
  { skip },
  async () => {
    const { cpu, emu } = await pair(true);
    await stepTogether(cpu, emu, 3);
    flipLowestBit(emu.optimizerData().v, 5);
    assert.notEqual(await emu.checksum(), await cpu.checksum(), "a second moment that differs in its lowest bit");
    const again = await pair(true);
    await stepTogether(again.cpu, again.emu, 1);
    flipLowestBit(again.emu.loraData(), 2);
    assert.notEqual(await again.emu.checksum(), await again.cpu.checksum(), "an adapter weight that differs");
  },
);
