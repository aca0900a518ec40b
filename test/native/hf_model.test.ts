// Hugging Face model folders through the native core: save/load round trips (F32 exact, BF16 rounded,
// sharded), tensors landing at their own parameter, and every bad folder refused naming file and cause.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, truncateSync, writeFileSync } from "node:fs";
import path from "node:path";
import { initModel, loadModel, saveModel } from "../../hf/hf_model.js";
import { parseHfConfig } from "../../hf/hf_config.js";
import { readSafetensorsHeader } from "../../hf/safetensors.js";
import {
  CorruptFileError,
  MissingTensorError,
  ShapeMismatchError,
  TruncatedFileError,
  UnexpectedTensorError,
  UnknownArchitectureError,
  UnsupportedDtypeError,
} from "../../hf/errors.js";
import type { RawTensor } from "../helpers/native_files.js";
import {
  bf16ToF32,
  f32Bytes,
  hfParamShapes,
  rawSafetensors,
  tempDir,
  tinyLlamaConfig,
  toBf16Bits,
  toF16Bits,
  writeJson,
} from "../helpers/native_files.js";

/** Deterministic, distinct values per tensor, so a tensor loaded into the wrong slot is noticed. */
function valuesFor(name: string, count: number): Float32Array {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) % 1000;
  return Float32Array.from({ length: count }, (_, i) => Math.round(Math.sin(h + i * 0.37) * 256) / 1024);
}

function craftedTensors(cfg: Record<string, unknown>): RawTensor[] {
  return [...hfParamShapes(cfg)].map(([name, shape]) => ({
    name,
    dtype: "F32",
    shape,
    bytes: f32Bytes(
      valuesFor(
        name,
        shape.reduce((a, b) => a * b, 1),
      ),
    ),
  }));
}

/** A model folder written byte by byte in TS; `edit` changes the tensor list to break it. */
function craftFolder(cfg: Record<string, unknown>, edit: (t: RawTensor[]) => RawTensor[] = (t) => t): string {
  const dir = tempDir();
  writeJson(path.join(dir, "config.json"), cfg);
  writeFileSync(path.join(dir, "model.safetensors"), rawSafetensors(edit(craftedTensors(cfg))));
  return dir;
}

async function assertRefused(dir: string, kind: new (...a: never[]) => Error, file: string, message: RegExp) {
  await assert.rejects(loadModel(dir), (e: Error) => {
    assert.ok(e instanceof kind, `expected ${kind.name}, got ${e.name}: ${e.message}`);
    assert.ok(e.message.startsWith(path.join(dir, file) + ": "), `message does not name ${file}: ${e.message}`);
    assert.match(e.message, message);
    return true;
  });
}

test("the addon's parameter table has HF's names and shapes (bias, GQA, untied head)", async () => {
  const cfg = tinyLlamaConfig({ attention_bias: true, mlp_bias: true });
  const { model } = await loadModel(craftFolder(cfg));
  const want = hfParamShapes(cfg);
  assert.deepEqual(new Map(model.params().map((p) => [p.name, p.shape])), want);
});

test("each tensor is loaded into its own parameter", async () => {
  const cfg = tinyLlamaConfig({ model_type: "qwen2", architectures: ["Qwen2ForCausalLM"] });
  const { model } = await loadModel(craftFolder(cfg));
  const data = model.paramData();
  for (const p of model.params()) {
    assert.deepEqual(data.subarray(p.offset, p.offset + p.size), valuesFor(p.name, p.size), p.name);
  }
});

test("F16 weights are loaded as float32", async () => {
  const cfg = tinyLlamaConfig();
  const dir = craftFolder(cfg, (ts) =>
    ts.map((t) => {
      const f = new Float32Array(t.bytes.buffer.slice(t.bytes.byteOffset, t.bytes.byteOffset + t.bytes.byteLength));
      return { ...t, dtype: "F16", bytes: new Uint8Array(Uint16Array.from(f, toF16Bits).buffer) };
    }),
  );
  const { model } = await loadModel(dir);
  const p = model.params().find((q) => q.name === "model.layers.1.mlp.down_proj.weight")!;
  assert.deepEqual(model.paramData().subarray(p.offset, p.offset + p.size), valuesFor(p.name, p.size));
});

test("an F32 save loads back bit for bit, with config and generation config", async () => {
  const config = parseHfConfig(tinyLlamaConfig({ eos_token_id: [2, 3] }), "config.json");
  const model = await initModel(config, 7);
  const dir = tempDir();
  await saveModel(model, config, dir, { dtype: "F32" });
  assert.deepEqual(readdirSync(dir).sort(), ["config.json", "generation_config.json", "model.safetensors"]);
  const saved = JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8"));
  assert.equal(saved.torch_dtype, "float32");
  assert.deepEqual(saved.architectures, ["LlamaForCausalLM"]);
  assert.deepEqual(JSON.parse(readFileSync(path.join(dir, "generation_config.json"), "utf8")).eos_token_id, [2, 3]);
  const loaded = await loadModel(dir);
  assert.deepEqual(loaded.config.native, config.native);
  assert.deepEqual(loaded.model.paramData(), model.paramData());
});

test("a BF16 save loads back rounded to nearest even", async () => {
  const config = parseHfConfig(tinyLlamaConfig(), "config.json");
  const model = await initModel(config, 11);
  const dir = tempDir();
  await saveModel(model, config, dir, { dtype: "BF16" });
  const header = await readSafetensorsHeader(path.join(dir, "model.safetensors"));
  assert.ok([...header.tensors.values()].every((t) => t.dtype === "BF16"));
  assert.equal(JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")).torch_dtype, "bfloat16");
  const loaded = await loadModel(dir);
  const want = model.paramData().map((x) => bf16ToF32(toBf16Bits(x)));
  assert.deepEqual(loaded.model.paramData(), want);
});

test("a sharded save writes an index and loads back; a later single-file save removes the shards", async () => {
  const config = parseHfConfig(tinyLlamaConfig({ tie_word_embeddings: true }), "config.json");
  const model = await initModel(config, 3);
  const dir = tempDir();
  await saveModel(model, config, dir, { dtype: "F32", shardBytes: 3000 });
  const index = JSON.parse(readFileSync(path.join(dir, "model.safetensors.index.json"), "utf8"));
  const shards = [...new Set(Object.values(index.weight_map as Record<string, string>))].sort();
  assert.ok(shards.length > 2, `expected several shards, got ${shards.join(", ")}`);
  assert.match(shards[0]!, /^model-00001-of-0000\d\.safetensors$/);
  assert.deepEqual(
    Object.keys(index.weight_map).sort(),
    model
      .params()
      .map((p) => p.name)
      .sort(),
  );
  assert.equal(index.metadata.total_size, model.paramData().length * 4);
  assert.ok(!existsSync(path.join(dir, "model.safetensors")));
  assert.deepEqual((await loadModel(dir)).model.paramData(), model.paramData());

  await saveModel(model, config, dir, { dtype: "F32" });
  assert.deepEqual(readdirSync(dir).sort(), ["config.json", "generation_config.json", "model.safetensors"]);
});

test("tokenizer files and generation_config.json are copied from the source folder", async () => {
  const config = parseHfConfig(tinyLlamaConfig(), "config.json");
  const src = tempDir();
  writeJson(path.join(src, "tokenizer.json"), { model: { type: "BPE" } });
  writeJson(path.join(src, "tokenizer_config.json"), { chat_template: "{{ x }}" });
  writeJson(path.join(src, "generation_config.json"), { eos_token_id: [2, 9], temperature: 0.6, bos_token_id: 1 });
  const dir = tempDir();
  await saveModel(await initModel(config, 1), config, dir, { dtype: "F32", sourceDir: src });
  assert.deepEqual(JSON.parse(readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")), {
    chat_template: "{{ x }}",
  });
  assert.ok(existsSync(path.join(dir, "tokenizer.json")));
  assert.deepEqual(JSON.parse(readFileSync(path.join(dir, "generation_config.json"), "utf8")), {
    eos_token_id: [2, 9],
    temperature: 0.6,
    bos_token_id: 1,
  });
});

test("random init is reproducible from the seed: norms 1, biases 0, matrices with std initializer_range", async () => {
  const config = parseHfConfig(
    tinyLlamaConfig({
      attention_bias: true,
      initializer_range: 0.05,
      hidden_size: 64,
      intermediate_size: 128,
      num_attention_heads: 8,
    }),
    "config.json",
  );
  const a = await initModel(config, 5);
  const b = await initModel(config, 5);
  const c = await initModel(config, 6);
  assert.deepEqual(a.paramData(), b.paramData());
  assert.notDeepEqual(a.paramData(), c.paramData());
  const data = a.paramData();
  for (const p of a.params()) {
    const v = data.subarray(p.offset, p.offset + p.size);
    if (p.name.endsWith("norm.weight"))
      assert.ok(
        v.every((x) => x === 1),
        p.name,
      );
    else if (p.name.endsWith(".bias"))
      assert.ok(
        v.every((x) => x === 0),
        p.name,
      );
    else if (p.size >= 4096) {
      const mean = v.reduce((s, x) => s + x, 0) / v.length;
      const std = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length);
      assert.ok(Math.abs(std - 0.05) < 0.005 && Math.abs(mean) < 0.005, `${p.name}: mean ${mean}, std ${std}`);
    }
  }
});

test("a tied model's lm_head.weight is accepted and ignored, as HF does", async () => {
  const cfg = tinyLlamaConfig({ tie_word_embeddings: true });
  const dir = craftFolder(cfg, (ts) => [
    ...ts,
    { name: "lm_head.weight", dtype: "F32", shape: [32, 16], bytes: new Uint8Array(32 * 16 * 4) },
  ]);
  const { model } = await loadModel(dir);
  assert.ok(!model.params().some((p) => p.name === "lm_head.weight"));
});

test("an unknown architecture is refused naming config.json", async () => {
  const dir = craftFolder(tinyLlamaConfig());
  writeJson(
    path.join(dir, "config.json"),
    tinyLlamaConfig({ architectures: ["MistralForCausalLM"], model_type: "mistral" }),
  );
  await assertRefused(dir, UnknownArchitectureError, "config.json", /unknown architecture MistralForCausalLM/);
});

test("a missing tensor is refused naming it", async () => {
  const dir = craftFolder(tinyLlamaConfig(), (ts) =>
    ts.filter((t) => t.name !== "model.layers.1.mlp.down_proj.weight"),
  );
  await assertRefused(
    dir,
    MissingTensorError,
    "model.safetensors",
    /missing tensor model\.layers\.1\.mlp\.down_proj\.weight \(shape \[16,24\]\)/,
  );
});

test("an extra tensor is refused naming it", async () => {
  const dir = craftFolder(tinyLlamaConfig(), (ts) => [
    ...ts,
    { name: "model.layers.0.self_attn.q_proj.bias", dtype: "F32", shape: [16], bytes: new Uint8Array(64) },
  ]);
  await assertRefused(
    dir,
    UnexpectedTensorError,
    "model.safetensors",
    /unexpected tensor model\.layers\.0\.self_attn\.q_proj\.bias/,
  );
});

test("a tensor of the wrong shape is refused with both shapes", async () => {
  const dir = craftFolder(tinyLlamaConfig(), (ts) =>
    ts.map((t) => (t.name === "model.layers.0.self_attn.k_proj.weight" ? { ...t, shape: [16, 8] } : t)),
  );
  await assertRefused(
    dir,
    ShapeMismatchError,
    "model.safetensors",
    /tensor model\.layers\.0\.self_attn\.k_proj\.weight has shape \[16,8\], expected \[8,16\]/,
  );
});

test("an unsupported dtype is refused naming dtype and tensor", async () => {
  const dir = craftFolder(tinyLlamaConfig(), (ts) =>
    ts.map((t) => (t.name === "model.norm.weight" ? { ...t, dtype: "I64", shape: [8] } : t)),
  );
  await assertRefused(
    dir,
    UnsupportedDtypeError,
    "model.safetensors",
    /unsupported dtype I64 for tensor model\.norm\.weight/,
  );
});

test("a truncated weight file is refused", async () => {
  const dir = craftFolder(tinyLlamaConfig());
  const file = path.join(dir, "model.safetensors");
  truncateSync(file, readFileSync(file).length - 10);
  await assertRefused(dir, TruncatedFileError, "model.safetensors", /truncated/);
});

test("a weight file with a corrupt header is refused", async () => {
  const dir = craftFolder(tinyLlamaConfig());
  const file = path.join(dir, "model.safetensors");
  const bytes = readFileSync(file);
  bytes[8 + 1] = "}".charCodeAt(0); // breaks the JSON right after its opening brace
  writeFileSync(file, bytes);
  await assertRefused(dir, CorruptFileError, "model.safetensors", /header is not valid JSON/);
});

test("a folder without weights is refused", async () => {
  const dir = tempDir();
  writeJson(path.join(dir, "config.json"), tinyLlamaConfig());
  await assert.rejects(loadModel(dir), /no model\.safetensors and no model\.safetensors\.index\.json/);
});

test("an index naming a missing shard, or a tensor its shard lacks, is refused naming the index", async () => {
  const config = parseHfConfig(tinyLlamaConfig(), "config.json");
  const dir = tempDir();
  await saveModel(await initModel(config, 2), config, dir, { dtype: "F32", shardBytes: 3000 });
  const indexFile = path.join(dir, "model.safetensors.index.json");
  const index = JSON.parse(readFileSync(indexFile, "utf8"));
  writeJson(indexFile, {
    ...index,
    weight_map: { ...index.weight_map, "model.norm.weight": "model-00009-of-00009.safetensors" },
  });
  await assertRefused(
    dir,
    CorruptFileError,
    "model.safetensors.index.json",
    /lists shard model-00009-of-00009\.safetensors, which does not exist/,
  );
  const first = index.weight_map["model.embed_tokens.weight"];
  writeJson(indexFile, { ...index, weight_map: { ...index.weight_map, "model.norm.weight": first } });
  await assertRefused(
    dir,
    MissingTensorError,
    "model.safetensors.index.json",
    /maps tensor model\.norm\.weight to model-00001/,
  );
});
