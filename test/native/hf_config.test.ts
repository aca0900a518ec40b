// config.json -> NativeModelConfig: the HF defaults and per-architecture bias rules, and refusals that
// name the file and the offending value.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseHfConfig, configJson } from "../../hf/hf_config.js";
import { UnknownArchitectureError, UnsupportedConfigError, CorruptFileError } from "../../hf/errors.js";
import { tinyLlamaConfig } from "../helpers/native_files.js";

const FILE = "/models/x/config.json";

test("llama config maps to the native shape with head_dim = hidden / heads", () => {
  const c = parseHfConfig(tinyLlamaConfig(), FILE);
  assert.equal(c.architecture, "LlamaForCausalLM");
  assert.deepEqual(c.native, {
    vocabSize: 32,
    hiddenSize: 16,
    intermediateSize: 24,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 4,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    tieWordEmbeddings: false,
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    ropeScaling: null,
  });
  assert.equal(c.initializerRange, 0.02);
  assert.deepEqual(c.eosTokenIds, [2]);
});

test("explicit head_dim wins over hidden / heads", () => {
  assert.equal(parseHfConfig(tinyLlamaConfig({ head_dim: 8 }), FILE).native.headDim, 8);
});

test("num_key_value_heads defaults to num_attention_heads", () => {
  const cfg = tinyLlamaConfig();
  delete cfg.num_key_value_heads;
  assert.equal(parseHfConfig(cfg, FILE).native.numKvHeads, 4);
});

test("llama attention_bias gives q/k/v and o bias; mlp_bias gives MLP bias", () => {
  const n = parseHfConfig(tinyLlamaConfig({ attention_bias: true, mlp_bias: true }), FILE).native;
  assert.deepEqual([n.qkvBias, n.oBias, n.mlpBias], [true, true, true]);
});

test("qwen2 has q/k/v bias and no o_proj bias whatever the config says", () => {
  const cfg = tinyLlamaConfig({
    architectures: ["Qwen2ForCausalLM"],
    model_type: "qwen2",
    attention_bias: true,
    tie_word_embeddings: true,
  });
  const c = parseHfConfig(cfg, FILE);
  assert.equal(c.modelType, "qwen2");
  assert.deepEqual(
    [c.native.qkvBias, c.native.oBias, c.native.mlpBias, c.native.tieWordEmbeddings],
    [true, false, false, true],
  );
});

test("model_type alone identifies the architecture when architectures is absent", () => {
  const cfg = tinyLlamaConfig({ model_type: "qwen2" });
  delete cfg.architectures;
  assert.equal(parseHfConfig(cfg, FILE).architecture, "Qwen2ForCausalLM");
});

test("llama3 rope_scaling is mapped; rope_type and the older 'type' key both work", () => {
  const scaling = { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
  const want = { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
  assert.deepEqual(
    parseHfConfig(tinyLlamaConfig({ rope_scaling: { ...scaling, rope_type: "llama3" } }), FILE).native.ropeScaling,
    want,
  );
  assert.deepEqual(
    parseHfConfig(tinyLlamaConfig({ rope_scaling: { ...scaling, type: "llama3" } }), FILE).native.ropeScaling,
    want,
  );
  assert.equal(parseHfConfig(tinyLlamaConfig({ rope_scaling: null }), FILE).native.ropeScaling, null);
});

test("transformers 5 rope_parameters supply rope_theta and the scaling", () => {
  const c = parseHfConfig(
    tinyLlamaConfig({ rope_theta: undefined, rope_parameters: { rope_type: "default", rope_theta: 500000 } }),
    FILE,
  );
  assert.equal(c.native.ropeTheta, 500000);
  assert.equal(c.native.ropeScaling, null);
});

test("an unknown architecture is refused naming the file and the architecture", () => {
  assert.throws(
    () => parseHfConfig({ architectures: ["BertForMaskedLM"], model_type: "bert", hidden_size: 16 }, FILE),
    (e: Error) =>
      e instanceof UnknownArchitectureError && e.message.includes(FILE) && e.message.includes("BertForMaskedLM"),
  );
  const cfg = tinyLlamaConfig({ model_type: "mistral" });
  delete cfg.architectures;
  assert.throws(() => parseHfConfig(cfg, FILE), /config\.json: unknown architecture.*mistral/);
});

test("a rope scaling type other than llama3 is refused naming the file and the type", () => {
  assert.throws(
    () => parseHfConfig(tinyLlamaConfig({ rope_scaling: { rope_type: "yarn", factor: 4 } }), FILE),
    (e: Error) =>
      e instanceof UnsupportedConfigError &&
      /config\.json: rope_scaling rope_type "yarn" is not supported/.test(e.message),
  );
  assert.throws(
    () => parseHfConfig(tinyLlamaConfig({ rope_scaling: { type: "linear", factor: 2 } }), FILE),
    /"linear" is not supported/,
  );
});

test("llama3 scaling with a missing factor names the field", () => {
  assert.throws(
    () => parseHfConfig(tinyLlamaConfig({ rope_scaling: { rope_type: "llama3", factor: 8 } }), FILE),
    /low_freq_factor/,
  );
});

test("an activation other than silu is refused", () => {
  assert.throws(
    () => parseHfConfig(tinyLlamaConfig({ hidden_act: "gelu" }), FILE),
    /hidden_act "gelu" is not supported/,
  );
});

test("a missing or mistyped field is named", () => {
  const cfg = tinyLlamaConfig();
  delete cfg.hidden_size;
  assert.throws(
    () => parseHfConfig(cfg, FILE),
    (e: Error) => e instanceof CorruptFileError && /config\.json: .*hidden_size/.test(e.message),
  );
  assert.throws(() => parseHfConfig(tinyLlamaConfig({ num_hidden_layers: "2" }), FILE), /num_hidden_layers/);
});

test("heads that do not divide into key/value groups are refused", () => {
  assert.throws(
    () => parseHfConfig(tinyLlamaConfig({ num_key_value_heads: 3 }), FILE),
    /not a multiple of num_key_value_heads 3/,
  );
});

test("the saved config states every shape field and round-trips to the same native config", () => {
  const c = parseHfConfig(tinyLlamaConfig({ attention_bias: true, custom_key: "kept" }), FILE);
  const saved = configJson(c, "BF16");
  assert.equal(saved.torch_dtype, "bfloat16");
  assert.equal(saved.head_dim, 4);
  assert.equal(saved.attention_bias, true);
  assert.equal(saved.custom_key, "kept");
  assert.deepEqual(parseHfConfig(JSON.parse(JSON.stringify(saved)), FILE).native, c.native);
});
