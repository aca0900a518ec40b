// PEFT adapter folders as PEFT writes them: adapter_config.json key for key against PEFT's documented
// file (test/fixtures/peft/adapter_config.json, source in the README beside it), tensor names and
// shapes as PEFT's state dict names them, and folders PEFT wrote loading into the settings they state.
// None of these needs the native LoRA path: folders are crafted byte by byte in TS.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  adapterConfigJson,
  adapterTensorName,
  expectedAdapterTensors,
  loadAdapter,
  parseAdapterConfig,
} from "../../hf/peft_adapter.js";
import type { LoraSettings } from "../../native/js/addon.js";
import { toBf16Bits } from "../helpers/native_files.js";
import { SETTINGS, craftAdapter, tinyBaseParams, tinyLlamaConfig, valuesFor } from "../helpers/lora_adapters.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const peftFixture = JSON.parse(
  readFileSync(path.join(root, "test/fixtures/peft/adapter_config.json"), "utf8"),
) as Record<string, unknown>;

const jsonType = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v);

test("adapter_config.json has every key PEFT writes, with PEFT's JSON types", () => {
  const ours = adapterConfigJson(SETTINGS, "meta-llama/Llama-3.2-1B");
  for (const [key, peftValue] of Object.entries(peftFixture)) {
    assert.ok(key in ours, `missing key ${key}`);
    // PEFT fills auto_mapping only for a model without task_type; a causal LM has one (README)
    if (key === "task_type" || key === "auto_mapping") continue;
    assert.equal(
      jsonType(ours[key]),
      jsonType(peftValue),
      `${key}: ${JSON.stringify(ours[key])} vs PEFT's ${JSON.stringify(peftValue)}`,
    );
  }
  assert.deepEqual(
    Object.keys(ours).filter((k) => !(k in peftFixture)),
    [],
    "keys PEFT does not write",
  );
  assert.deepEqual(Object.keys(ours), Object.keys(ours).sort(), "PEFT writes keys sorted (json.dumps sort_keys=True)");
});

test("adapter_config.json states the adapter: rank, alpha, dropout, targets, rsLoRA, base, causal LM", () => {
  const settings: LoraSettings = {
    rank: 16,
    alpha: 32,
    dropout: 0.05,
    targets: ["q_proj", "k_proj", "gate_proj"],
    rslora: true,
    seed: 3,
  };
  const ours = adapterConfigJson(settings, "meta-llama/Llama-3.2-1B");
  assert.equal(ours.peft_type, "LORA");
  assert.equal(ours.task_type, "CAUSAL_LM");
  assert.equal(ours.auto_mapping, null);
  assert.equal(ours.r, 16);
  assert.equal(ours.lora_alpha, 32);
  assert.equal(ours.lora_dropout, 0.05);
  assert.deepEqual(ours.target_modules, ["q_proj", "k_proj", "gate_proj"]);
  assert.equal(ours.use_rslora, true);
  assert.equal(ours.base_model_name_or_path, "meta-llama/Llama-3.2-1B");
  // what ringtune implements is plain LoRA: these carry PEFT's defaults, as in PEFT's own file
  for (const key of [
    "bias",
    "fan_in_fan_out",
    "inference_mode",
    "init_lora_weights",
    "modules_to_save",
    "layers_to_transform",
    "rank_pattern",
    "alpha_pattern",
    "revision",
    "use_dora",
    "layer_replication",
    "layers_pattern",
    "loftq_config",
    "megatron_config",
    "megatron_core",
  ]) {
    assert.deepEqual(ours[key], peftFixture[key], key);
  }
});

test("the written config reads back as the same settings (seed aside: the file's tensors replace the init)", () => {
  for (const settings of [
    SETTINGS,
    { rank: 8, alpha: 2.5, dropout: 0.1, targets: ["o_proj", "up_proj"], rslora: true, seed: 9 },
  ]) {
    const back = parseAdapterConfig(
      "adapter_config.json",
      JSON.parse(JSON.stringify(adapterConfigJson(settings, "x"))),
    );
    assert.deepEqual(back, { settings: { ...settings, seed: 0 }, baseModel: "x" });
  }
});

test("PEFT's own example config reads, up to its BERT target modules", () => {
  assert.throws(
    () => parseAdapterConfig("adapter_config.json", peftFixture),
    /target_modules: unknown target module "query"/,
  );
  const llama = { ...peftFixture, target_modules: ["q_proj", "v_proj"] };
  assert.deepEqual(parseAdapterConfig("adapter_config.json", llama).settings, {
    rank: 8,
    alpha: 8,
    dropout: 0,
    targets: ["q_proj", "v_proj"],
    rslora: false,
    seed: 0,
  });
});

test("a hand-written config with only the keys PEFT requires gets PEFT's defaults; all-linear means every linear layer", () => {
  const { settings, baseModel } = parseAdapterConfig("adapter_config.json", {
    peft_type: "LORA",
    r: 4,
    target_modules: "all-linear",
  });
  assert.deepEqual(settings, {
    rank: 4,
    alpha: 8,
    dropout: 0,
    rslora: false,
    seed: 0,
    targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
  });
  assert.equal(baseModel, null);
});

test("tensor names and shapes are PEFT's: base_model.model.<module>.lora_A.weight [r, in], lora_B.weight [out, r]", () => {
  // tiny Llama: hidden 16, 4 heads of 4 (q out 16), 2 KV heads (k/v out 8), intermediate 24, 2 layers
  const all = expectedAdapterTensors(tinyBaseParams(), {
    rank: 4,
    targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
  });
  assert.equal(all.size, 2 * 7 * 2);
  assert.equal(adapterTensorName(0, "q_proj", "A"), "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  assert.equal(adapterTensorName(1, "down_proj", "B"), "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight");
  const want: [string, number[]][] = [
    ["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", [4, 16]],
    ["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", [16, 4]],
    ["base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight", [8, 4]],
    ["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight", [8, 4]],
    ["base_model.model.model.layers.1.self_attn.o_proj.lora_A.weight", [4, 16]],
    ["base_model.model.model.layers.1.mlp.gate_proj.lora_B.weight", [24, 4]],
    ["base_model.model.model.layers.0.mlp.down_proj.lora_A.weight", [4, 24]],
    ["base_model.model.model.layers.0.mlp.down_proj.lora_B.weight", [16, 4]],
  ];
  for (const [name, shape] of want) assert.deepEqual(all.get(name), shape, name);
  const some = expectedAdapterTensors(tinyBaseParams(), { rank: 2, targets: ["v_proj"] });
  assert.deepEqual([...some.keys()].sort(), [
    "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight",
    "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight",
    "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight",
    "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight",
  ]);
});

test("a PEFT adapter folder loads: settings from the config, every tensor by PEFT name", async () => {
  const dir = craftAdapter();
  const loaded = await loadAdapter(dir, tinyBaseParams());
  assert.deepEqual(loaded.settings, { ...SETTINGS, seed: 0 });
  assert.equal(loaded.baseModel, "tiny-llama");
  const expected = expectedAdapterTensors(tinyBaseParams(), SETTINGS);
  assert.deepEqual(new Map([...loaded.tensors].map(([n, t]) => [n, t.shape])), expected);
  for (const [name, t] of loaded.tensors) assert.deepEqual(t.data, valuesFor(name, t.data.length), name);
  // without the base model only the names and the rank are checked; the tensors are the same
  const free = await loadAdapter(dir);
  assert.deepEqual([...free.tensors.keys()].sort(), [...loaded.tensors.keys()].sort());
});

test("a BF16 adapter (PEFT saves in the model's dtype) loads converted to float32", async () => {
  const dir = craftAdapter({
    editTensors: (ts) =>
      ts.map((t) => {
        const v = valuesFor(t.name, t.shape[0]! * t.shape[1]!);
        return { ...t, dtype: "BF16", bytes: new Uint8Array(Uint16Array.from(v, toBf16Bits).buffer) };
      }),
  });
  const loaded = await loadAdapter(dir, tinyBaseParams());
  // the values are multiples of 1/256 below 1/2 in size: exact in bfloat16
  for (const [name, t] of loaded.tensors) assert.deepEqual(t.data, valuesFor(name, t.data.length), name);
});

test("an adapter for a Qwen2-style base (q/k/v bias) has the same adapter tensors: LoRA adapts weights only", () => {
  const qwen = tinyLlamaConfig({ architectures: ["Qwen2ForCausalLM"], model_type: "qwen2" });
  assert.deepEqual(
    expectedAdapterTensors(tinyBaseParams(qwen), SETTINGS),
    expectedAdapterTensors(tinyBaseParams(), SETTINGS),
  );
});
