// Bad adapter folders are refused before any weight moves, each with the error kind for its cause and a
// message that starts with the file and names the field or the tensor.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync, truncateSync, writeFileSync } from "node:fs";
import path from "node:path";
import {
  ADAPTER_CONFIG,
  ADAPTER_WEIGHTS,
  AdapterConfigError,
  UnsupportedAdapterError,
  loadAdapter,
} from "../../hf/peft_adapter.js";
import {
  CorruptFileError,
  MissingTensorError,
  ShapeMismatchError,
  TruncatedFileError,
  UnexpectedTensorError,
} from "../../hf/errors.js";
import { f32Bytes } from "../helpers/native_files.js";
import { SETTINGS, craftAdapter, tinyBaseParams } from "../helpers/lora_adapters.js";

type ErrorClass = new (...a: never[]) => Error;

async function assertRefused(dir: string, kind: ErrorClass, file: string, message: RegExp, withBase = true) {
  await assert.rejects(loadAdapter(dir, withBase ? tinyBaseParams() : undefined), (e: Error) => {
    assert.ok(e instanceof kind, `expected ${kind.name}, got ${e.name}: ${e.message}`);
    const prefix = (file === "" ? dir : path.join(dir, file)) + ": ";
    assert.ok(e.message.startsWith(prefix), `message does not start with ${prefix}: ${e.message}`);
    assert.match(e.message, message);
    return true;
  });
}

const editConfig = (edit: (c: Record<string, unknown>) => void) =>
  craftAdapter({
    editConfig: (c) => {
      edit(c);
      return c;
    },
  });

const Q0_A = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";

test("a folder without adapter_config.json is not an adapter", async () => {
  const dir = craftAdapter();
  rmSync(path.join(dir, ADAPTER_CONFIG));
  await assertRefused(dir, CorruptFileError, "", /no adapter_config\.json: not a PEFT adapter folder/);
});

test("adapter_config.json that is not JSON is refused", async () => {
  const dir = craftAdapter();
  writeFileSync(path.join(dir, ADAPTER_CONFIG), "{ r: 8");
  await assertRefused(dir, AdapterConfigError, ADAPTER_CONFIG, /not valid JSON/);
});

test("a non-LoRA PEFT type is refused naming peft_type", async () => {
  await assertRefused(
    editConfig((c) => (c.peft_type = "IA3")),
    AdapterConfigError,
    ADAPTER_CONFIG,
    /peft_type is "IA3", expected "LORA"/,
  );
  await assertRefused(
    editConfig((c) => delete c.peft_type),
    AdapterConfigError,
    ADAPTER_CONFIG,
    /peft_type is missing/,
  );
});

test("a missing or bad rank is refused naming r", async () => {
  await assertRefused(
    editConfig((c) => delete c.r),
    AdapterConfigError,
    ADAPTER_CONFIG,
    /r \(the LoRA rank\) is missing/,
  );
  await assertRefused(
    editConfig((c) => (c.r = 0)),
    AdapterConfigError,
    ADAPTER_CONFIG,
    /r must be a positive integer, got 0/,
  );
  await assertRefused(
    editConfig((c) => (c.r = "4")),
    AdapterConfigError,
    ADAPTER_CONFIG,
    /r must be a positive integer, got "4"/,
  );
});

test("bad lora_alpha, lora_dropout or use_rslora are refused naming the field", async () => {
  await assertRefused(
    editConfig((c) => (c.lora_alpha = -1)),
    AdapterConfigError,
    ADAPTER_CONFIG,
    /lora_alpha must be a positive number, got -1/,
  );
  await assertRefused(
    editConfig((c) => (c.lora_dropout = 1)),
    AdapterConfigError,
    ADAPTER_CONFIG,
    /lora_dropout must be a number in \[0, 1\), got 1/,
  );
  await assertRefused(
    editConfig((c) => (c.use_rslora = "yes")),
    AdapterConfigError,
    ADAPTER_CONFIG,
    /use_rslora must be true or false/,
  );
});

test("an unknown target module is refused naming it and the modules there are", async () => {
  await assertRefused(
    editConfig((c) => (c.target_modules = ["q_proj", "c_attn"])),
    UnsupportedAdapterError,
    ADAPTER_CONFIG,
    /target_modules: unknown target module "c_attn" \(Llama\/Qwen2 linear layers: q_proj k_proj v_proj o_proj gate_proj up_proj down_proj\)/,
  );
  await assertRefused(
    editConfig((c) => (c.target_modules = ".*\\.(q|v)_proj")),
    UnsupportedAdapterError,
    ADAPTER_CONFIG,
    /target_modules is the pattern/,
  );
  await assertRefused(
    editConfig((c) => (c.target_modules = [])),
    AdapterConfigError,
    ADAPTER_CONFIG,
    /target_modules must be a non-empty list/,
  );
  await assertRefused(
    editConfig((c) => delete c.target_modules),
    AdapterConfigError,
    ADAPTER_CONFIG,
    /target_modules is missing/,
  );
});

test("PEFT features the core does not implement are refused by name: DoRA, biases, patterns, partial layers", async () => {
  const cases: [string, unknown, RegExp][] = [
    ["use_dora", true, /use_dora is true: DoRA is not supported/],
    ["bias", "lora_only", /bias is "lora_only": trained biases is not supported/],
    ["fan_in_fan_out", true, /fan_in_fan_out is true/],
    ["rank_pattern", { q_proj: 8 }, /rank_pattern is \{"q_proj":8\}: per-module ranks/],
    ["alpha_pattern", { q_proj: 8 }, /alpha_pattern is .*: per-module alphas/],
    ["layers_to_transform", [0], /layers_to_transform is \[0\]: LoRA on a subset of the layers/],
    ["modules_to_save", ["lm_head"], /modules_to_save is \["lm_head"\]/],
    ["task_type", "SEQ_2_SEQ_LM", /task_type is "SEQ_2_SEQ_LM"; only CAUSAL_LM/],
  ];
  for (const [key, value, message] of cases) {
    await assertRefused(
      editConfig((c) => (c[key] = value)),
      UnsupportedAdapterError,
      ADAPTER_CONFIG,
      message,
    );
  }
});

test("a missing tensor is refused naming it and counting the others", async () => {
  const dir = craftAdapter({ editTensors: (ts) => ts.filter((t) => !t.name.includes("layers.1.mlp.down_proj")) });
  await assertRefused(
    dir,
    MissingTensorError,
    ADAPTER_WEIGHTS,
    /missing tensor base_model\.model\.model\.layers\.1\.mlp\.down_proj\.lora_A\.weight \(shape \[4,24\]\) \(and 1 more\)/,
  );
  // without the base, a lone A still lacks its B
  const lone = craftAdapter({ editTensors: (ts) => ts.filter((t) => t.name !== Q0_A.replace("lora_A", "lora_B")) });
  await assertRefused(
    lone,
    MissingTensorError,
    ADAPTER_WEIGHTS,
    /missing tensor .*q_proj\.lora_B\.weight \(the pair of .*q_proj\.lora_A\.weight\)/,
    false,
  );
});

test("a tensor shaped for another base model is refused naming it and both shapes", async () => {
  const dir = craftAdapter({
    editTensors: (ts) =>
      ts.map((t) => (t.name === Q0_A ? { ...t, shape: [4, 8], bytes: f32Bytes(new Float32Array(32)) } : t)),
  });
  await assertRefused(
    dir,
    ShapeMismatchError,
    ADAPTER_WEIGHTS,
    new RegExp(`tensor ${Q0_A.replaceAll(".", "\\.")} has shape \\[4,8\\], expected \\[4,16\\]`),
  );
});

test("tensors of another rank than r are refused, with or without the base model", async () => {
  const dir = editConfig((c) => (c.r = 8));
  await assertRefused(dir, ShapeMismatchError, ADAPTER_WEIGHTS, /has shape \[4,16\], expected \[8,16\]/);
  await assertRefused(
    dir,
    ShapeMismatchError,
    ADAPTER_WEIGHTS,
    /has shape \[4,16\], expected \[8, in\] \(r = 8\)/,
    false,
  );
});

test("an extra tensor is refused: a layer the base lacks, an untargeted module, a name with the adapter name", async () => {
  const extra = (name: string) =>
    craftAdapter({
      editTensors: (ts) => [...ts, { name, dtype: "F32", shape: [4, 16], bytes: f32Bytes(new Float32Array(64)) }],
    });
  await assertRefused(
    extra("base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight"),
    UnexpectedTensorError,
    ADAPTER_WEIGHTS,
    /unexpected tensor base_model\.model\.model\.layers\.2\.self_attn\.q_proj\.lora_A\.weight \(shape \[4,16\]\): the base model has no such module/,
  );
  await assertRefused(
    extra("base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight"),
    UnexpectedTensorError,
    ADAPTER_WEIGHTS,
    /unexpected tensor .*k_proj\.lora_A\.weight .*not among target_modules/,
  );
  const withName = craftAdapter({
    editTensors: (ts) => ts.map((t) => ({ ...t, name: t.name.replace(".weight", ".default.weight") })),
  });
  await assertRefused(withName, MissingTensorError, ADAPTER_WEIGHTS, /missing tensor/);
  await assertRefused(
    withName,
    UnexpectedTensorError,
    ADAPTER_WEIGHTS,
    /PEFT saves names without the adapter name/,
    false,
  );
});

test("a pickled adapter_model.bin is refused with how to get safetensors; no weights at all is not an adapter", async () => {
  const dir = craftAdapter();
  rmSync(path.join(dir, ADAPTER_WEIGHTS));
  await assertRefused(dir, CorruptFileError, "", /no adapter_model\.safetensors: not a PEFT adapter folder/);
  writeFileSync(path.join(dir, "adapter_model.bin"), "PK\u0003\u0004");
  await assertRefused(
    dir,
    CorruptFileError,
    "",
    /adapter_model\.bin is a pickle, which is not read; save the adapter with safe_serialization=True/,
  );
});

test("a truncated adapter_model.safetensors is refused as truncated", async () => {
  const dir = craftAdapter();
  truncateSync(path.join(dir, ADAPTER_WEIGHTS), 200);
  await assertRefused(dir, TruncatedFileError, ADAPTER_WEIGHTS, /truncated|runs beyond the end/);
});

test("the settings the refusals start from are valid (the crafted folder loads)", async () => {
  assert.equal((await loadAdapter(craftAdapter(), tinyBaseParams())).settings.rank, SETTINGS.rank);
});
