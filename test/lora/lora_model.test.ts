// LoRA through the native core and the adapter files: the core's adapter table is PEFT's, step 0 equals
// the base model, merging equals running the adapter, and save -> load -> apply gives back the same
// adapter and the same logits.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import path from "node:path";
import { loadAddon } from "../../native/js/addon.js";
import type { LoraSettings, NativeModel } from "../../native/js/addon.js";
import { parseHfConfig } from "../../hf/hf_config.js";
import type { HfConfig } from "../../hf/hf_config.js";
import {
  ADAPTER_WEIGHTS,
  applyAdapter,
  expectedAdapterTensors,
  loadAdapter,
  saveAdapter,
} from "../../hf/peft_adapter.js";
import { readSafetensorsHeader } from "../../hf/safetensors.js";
import { MissingTensorError } from "../../hf/errors.js";
import {
  ALL_TARGETS,
  SETTINGS,
  craftAdapter,
  logitsOf,
  maxAbsDiff,
  randomizeAdapters,
  tempDir,
  tinyBatch,
  tinyLlamaConfig,
} from "../helpers/lora_adapters.js";

const config: HfConfig = parseHfConfig(tinyLlamaConfig({ attention_bias: true, mlp_bias: true }), "config.json");

async function baseModel(seed = 11): Promise<NativeModel> {
  const model = loadAddon().createModel(config.native);
  // std 0.2 rather than HF's 0.02: logits then vary enough that an adapter's effect is far above rounding
  await model.initRandom(seed, 0.2);
  return model;
}

/** A model with the same weights as `from` and no adapters (paramData copied). */
function copyOfWeights(from: NativeModel): NativeModel {
  const model = loadAddon().createModel(config.native);
  model.paramData().set(from.paramData());
  return model;
}

function scaleOf(s: LoraSettings): number {
  return s.rslora ? s.alpha / Math.sqrt(s.rank) : s.alpha / s.rank;
}

test("the core's LoRA parameters are PEFT's table: names, A [r, in], B [out, r], one per targeted layer", async () => {
  const model = await baseModel();
  const settings = { ...SETTINGS, targets: ALL_TARGETS };
  model.enableLora(settings);
  assert.deepEqual(model.loraSettings(), settings);
  const table = new Map(model.loraParams().map((p) => [p.name, p.shape]));
  assert.deepEqual(table, expectedAdapterTensors(model.params(), settings));
  const size = model.loraParams().reduce((s, p) => s + p.size, 0);
  assert.equal(model.loraData().length, size);
});

test("step 0 of LoRA equals the base model: logits identical right after enableLora (B = 0)", async () => {
  const model = await baseModel();
  const before = await logitsOf(model);
  model.enableLora({ ...SETTINGS, targets: ALL_TARGETS });
  const data = model.loraData();
  for (const p of model.loraParams()) {
    const v = data.subarray(p.offset, p.offset + p.size);
    if (p.name.includes("lora_B"))
      assert.ok(
        v.every((x) => x === 0),
        `${p.name} is not zero`,
      );
    // PEFT's init: kaiming-uniform with a = sqrt(5), i.e. bound 1/sqrt(in)
    else
      assert.ok(
        v.some((x) => x !== 0) && v.every((x) => Math.abs(x) <= 1 / Math.sqrt(p.shape[1]!)),
        `${p.name} is not U(-1/sqrt(in), 1/sqrt(in))`,
      );
  }
  assert.deepEqual(await logitsOf(model), before);
});

for (const rslora of [false, true]) {
  test(`the merged model's logits equal the base plus the adapter's (${rslora ? "rsLoRA alpha/sqrt(r)" : "alpha/r"})`, async () => {
    const settings: LoraSettings = { ...SETTINGS, targets: ALL_TARGETS, rslora, alpha: 6 };
    const lora = await baseModel();
    const base = await logitsOf(lora);
    lora.enableLora(settings);
    randomizeAdapters(lora);
    const withAdapter = await logitsOf(lora);
    assert.ok(
      maxAbsDiff(withAdapter, base) > 0.05,
      `the adapter barely changes the logits (${maxAbsDiff(withAdapter, base)})`,
    );

    const weightsBefore = Float32Array.from(lora.paramData());
    await lora.mergeLora();
    // one weight against W + scale * B A computed here
    const w = lora.params().find((p) => p.name === "model.layers.1.self_attn.k_proj.weight")!;
    const table = new Map(lora.loraParams().map((p) => [p.name, p]));
    const A = table.get("base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight")!;
    const B = table.get("base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight")!;
    const [out, inDim] = w.shape as [number, number];
    const ld = lora.loraData();
    const want = new Float64Array(out * inDim);
    for (let o = 0; o < out; o++)
      for (let i = 0; i < inDim; i++) {
        let s = 0;
        for (let r = 0; r < settings.rank; r++)
          s += ld[B.offset + o * settings.rank + r]! * ld[A.offset + r * inDim + i]!;
        want[o * inDim + i] = weightsBefore[w.offset + o * inDim + i]! + scaleOf(settings) * s;
      }
    assert.ok(maxAbsDiff(lora.paramData().subarray(w.offset, w.offset + w.size), want) < 1e-6);

    const merged = copyOfWeights(lora);
    const diff = maxAbsDiff(await logitsOf(merged), withAdapter);
    assert.ok(diff < 2e-5, `merged vs adapter logits differ by ${diff}`);
  });
}

test("save -> load round trip: the same settings and bit-identical tensors, as PEFT lays out the folder", async () => {
  const model = await baseModel();
  const settings: LoraSettings = {
    rank: 3,
    alpha: 5,
    dropout: 0.1,
    targets: ["k_proj", "o_proj", "up_proj"],
    rslora: true,
    seed: 4,
  };
  model.enableLora(settings);
  randomizeAdapters(model);
  const dir = tempDir("ringtune-adapter-");
  await saveAdapter(model, dir, { baseModel: "org/tiny" });
  assert.deepEqual(readdirSync(dir).sort(), ["adapter_config.json", "adapter_model.safetensors"]);

  const header = await readSafetensorsHeader(path.join(dir, ADAPTER_WEIGHTS));
  assert.deepEqual(header.metadata, { format: "pt" });
  assert.ok([...header.tensors.values()].every((t) => t.dtype === "F32"));

  const loaded = await loadAdapter(dir, model.params());
  assert.deepEqual(loaded.settings, { ...settings, seed: 0 });
  assert.equal(loaded.baseModel, "org/tiny");
  const data = model.loraData();
  assert.equal(loaded.tensors.size, model.loraParams().length);
  for (const p of model.loraParams()) {
    const t = loaded.tensors.get(p.name);
    assert.ok(t, `no ${p.name}`);
    assert.deepEqual(t.shape, p.shape);
    assert.deepEqual(t.data, data.subarray(p.offset, p.offset + p.size), p.name);
  }
});

test("applyAdapter onto a fresh base gives the same adapters and the same logits; training continues on them", async () => {
  const model = await baseModel();
  model.enableLora({ ...SETTINGS, targets: ALL_TARGETS });
  randomizeAdapters(model);
  const want = await logitsOf(model);
  const dir = tempDir("ringtune-adapter-");
  await saveAdapter(model, dir, { baseModel: "tiny" });

  const fresh = await baseModel();
  const settings = await applyAdapter(fresh, dir);
  assert.deepEqual(settings, { ...SETTINGS, targets: ALL_TARGETS, seed: 0 });
  assert.deepEqual(fresh.loraData(), model.loraData());
  assert.deepEqual(await logitsOf(fresh), want);

  // the adapters are what trains now; the base stays frozen
  assert.deepEqual(
    fresh.trainableParams().map((p) => p.name),
    fresh.loraParams().map((p) => p.name),
  );
  const weights = Float32Array.from(fresh.paramData());
  const adapters = Float32Array.from(fresh.loraData());
  await fresh.zeroGrad();
  await fresh.forwardBackward(tinyBatch(), { backward: true });
  await fresh.adamwStep({ lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 0 });
  assert.deepEqual(fresh.paramData(), weights);
  assert.ok(maxAbsDiff(fresh.loraData(), adapters) > 0);
});

test("applyAdapter with baseBf16 (a LoRA job resumed from its checkpoint) keeps the frozen base in bf16", async () => {
  const model = await baseModel();
  model.enableLora({ ...SETTINGS, targets: ALL_TARGETS });
  randomizeAdapters(model);
  const dir = tempDir("ringtune-adapter-");
  await saveAdapter(model, dir, { baseModel: "tiny" });

  const fresh = await baseModel();
  const fp32Base = fresh.memory().baseParams;
  await applyAdapter(fresh, dir, { baseBf16: true });
  const m = fresh.memory();
  assert.equal(m.baseBytesPerParam, 2);
  assert.equal(m.baseParams * 2, fp32Base, "half the fp32 base's bytes");
  assert.deepEqual(fresh.loraData(), model.loraData());
});

test("applyAdapter refuses a bad folder before enabling LoRA: the model is left as it was", async () => {
  const model = await baseModel();
  const dir = craftAdapter({
    cfg: tinyLlamaConfig({ attention_bias: true, mlp_bias: true }),
    editTensors: (ts) => ts.slice(1),
  });
  await assert.rejects(applyAdapter(model, dir), MissingTensorError);
  assert.equal(model.loraSettings(), null);
  // and a model that already has adapters is not given a second set
  model.enableLora(SETTINGS);
  await assert.rejects(applyAdapter(model, craftAdapter()), /already has LoRA adapters/);
});
