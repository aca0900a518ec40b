// LoRA on a frozen base held in bf16, through the addon: half the base bytes and no base gradients or
// moments in the memory report, losses equal to an fp32 base rounded to bf16, saving writes the base's
// exact bf16 values, and a merge brings the base back to fp32.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { loadAddon, type NativeModel } from "../../native/js/addon.js";
import { parseHfConfig } from "../../hf/hf_config.js";
import { loadModel, saveModel } from "../../hf/hf_model.js";
import { bf16ToF32, tempDir, toBf16Bits } from "../helpers/native_files.js";
import { SETTINGS, randomizeAdapters, tinyBatch, tinyLlamaConfig } from "../helpers/lora_adapters.js";

const config = parseHfConfig(tinyLlamaConfig(), "config.json");
const roundToBf16 = (x: number) => bf16ToF32(toBf16Bits(x));

async function loraModel(baseBf16: boolean, roundFirst: boolean): Promise<NativeModel> {
  const model = await loadAddon().createModelAsync(config.native);
  await model.initRandom(5, 0.2);
  if (roundFirst) {
    const w = model.paramData();
    for (let i = 0; i < w.length; i++) w[i] = roundToBf16(w[i]!);
  }
  await model.enableLoraAsync({ ...SETTINGS, baseBf16 });
  randomizeAdapters(model);
  return model;
}

test("a bf16 LoRA base: half the base bytes, no base gradients or moments, the loss of the rounded fp32 base", async () => {
  const fp32 = await loraModel(false, true);
  const bf16 = await loraModel(true, false);
  const losses: number[] = [];
  for (const m of [fp32, bf16]) {
    losses.push((await m.forwardBackward(tinyBatch(), { backward: true, zeroGrads: true })).loss);
    await m.adamwStep({ lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 0 });
  }
  const [a, b] = [fp32.memory(), bf16.memory()];
  assert.equal(a.baseBytesPerParam, 4);
  assert.equal(b.baseBytesPerParam, 2);
  assert.equal(b.baseParams * 2, a.baseParams, "the bf16 base holds half the bytes");
  const adapterBytes = bf16.loraData().length * 4;
  assert.equal(b.grads, adapterBytes, "gradients for the adapters only");
  assert.equal(b.moments, 2 * adapterBytes, "moments for the adapters only");
  assert.ok(Math.abs(losses[1]! - losses[0]!) <= 1e-5 * Math.abs(losses[0]!), `losses ${losses.join(" vs ")}`);
  assert.throws(() => bf16.paramData(), /held in bf16.*baseDataBf16/);
});

test("saving a bf16 base writes its values exactly; merging brings the base back to fp32", async () => {
  const bf16 = await loraModel(true, false);
  const bits = bf16.baseDataBf16()!;
  assert.equal(
    bits.length,
    bf16.params().reduce((n, p) => n + p.size, 0),
  );
  const dir = path.join(tempDir(), "base");
  await saveModel(bf16, config, dir, { dtype: "F32" });
  const loaded = (await loadModel(dir)).model.paramData();
  for (let i = 0; i < bits.length; i += 97) assert.equal(loaded[i], bf16ToF32(bits[i]!), `weight ${i}`);
  await bf16.mergeLora();
  assert.equal(bf16.baseDataBf16(), null);
  assert.equal(bf16.memory().baseBytesPerParam, 4);
  assert.equal(bf16.paramData().length, bits.length);
});

test("a base created in bf16 holds the same bf16 weights as an fp32 base rounded later, and the same LoRA losses", async () => {
  const rounded = await loadAddon().createModelAsync(config.native);
  await rounded.initRandom(5, 0.2);
  await rounded.enableLoraAsync({ ...SETTINGS, baseBf16: true });
  const direct = await loadAddon().createModelAsync(config.native, { baseBf16: true });
  assert.throws(() => direct.paramData(), /held in bf16/, "no fp32 copy of the base, even before initialisation");
  await direct.initRandom(5, 0.2);
  assert.deepEqual(direct.baseDataBf16(), rounded.baseDataBf16());
  assert.equal(direct.memory().baseBytesPerParam, 2);
  assert.throws(() => direct.enableLora({ ...SETTINGS, baseBf16: false }), /created in bf16/);
  await direct.enableLoraAsync({ ...SETTINGS, baseBf16: true });
  const losses: number[] = [];
  for (const m of [rounded, direct]) {
    randomizeAdapters(m);
    losses.push((await m.forwardBackward(tinyBatch(), { backward: true, zeroGrads: true })).loss);
  }
  assert.equal(losses[1], losses[0]);
});
