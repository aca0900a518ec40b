// A LoRA job's frozen base read from safetensors straight into bf16: the same bits as reading it in fp32
// and rounding, for F32, BF16 and F16 tensors, and at no point a second full copy of the base in memory.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type NativeModel } from "../../native/js/addon.js";
import { parseHfConfig } from "../../hf/hf_config.js";
import { initModel, loadModel, saveModel } from "../../hf/hf_model.js";
import {
  f32Bytes,
  hfParamShapes,
  rawSafetensors,
  tempDir,
  tinyLlamaConfig,
  toBf16Bits,
  toF16Bits,
  writeJson,
  type RawTensor,
} from "../helpers/native_files.js";
import { SETTINGS, randomizeAdapters, tinyBatch } from "../helpers/lora_adapters.js";
import type { LoadPath, LoadPeakResult } from "../helpers/load_peak_child.js";

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), "../helpers/load_peak_child.js");

/** Deterministic values in about [-1, 1): neither bf16 nor f16 holds most of them exactly. */
function noise(seed: number, count: number): Float32Array {
  return Float32Array.from({ length: count }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) * 0.999);
}

/** Half precision, round to nearest (ties away: the tests compare rounding to bf16, not this). */
const toF16 = (x: number) => toF16Bits(Math.round(x * 1024) / 1024);

/**
 * A model folder whose tensors rotate through F32, BF16 and F16. The embedding and head are wide enough to
 * be read in several pieces side by side.
 */
function mixedDtypeFolder(cfg: Record<string, unknown>): string {
  const dir = tempDir();
  writeJson(path.join(dir, "config.json"), cfg);
  const tensors: RawTensor[] = [...hfParamShapes(cfg)].map(([name, shape], k) => {
    const values = noise(
      k + 1,
      shape.reduce((a, b) => a * b, 1),
    );
    const dtype = (["F32", "BF16", "F16"] as const)[k % 3]!;
    const bytes =
      dtype === "F32"
        ? f32Bytes(values)
        : new Uint8Array(Uint16Array.from(values, dtype === "BF16" ? toBf16Bits : toF16).buffer);
    return { name, dtype, shape, bytes };
  });
  writeFileSync(path.join(dir, "model.safetensors"), rawSafetensors(tensors));
  return dir;
}

async function lossWithAdapters(model: NativeModel, vocab: number): Promise<number> {
  randomizeAdapters(model);
  return (await model.forwardBackward(tinyBatch(vocab), { backward: false })).loss;
}

test("a base read straight into bf16 holds the bits of an fp32 load rounded to bf16, for F32, BF16 and F16 tensors", async () => {
  // 2 x 40000 x 64 floats of embedding and head: several 8 MiB pieces each.
  const cfg = tinyLlamaConfig({ vocab_size: 40000, hidden_size: 64, intermediate_size: 96 });
  const dir = mixedDtypeFolder(cfg);
  const through = (await loadModel(dir)).model;
  await through.enableLoraAsync({ ...SETTINGS, baseBf16: true });
  const direct = (await loadModel(dir, { baseBf16: true })).model;
  assert.throws(() => direct.paramData(), /held in bf16/, "no fp32 copy of the base was made");
  assert.deepEqual(direct.baseDataBf16(), through.baseDataBf16());
  // The forward widens what the load wrote (the final norm among it), not what the base held when created;
  // fresh adapters (B = 0) add nothing, so the base alone must give the same loss.
  const batch = tinyBatch(40000);
  const baseLoss = (await direct.forwardBackward(batch, { backward: false })).loss;
  assert.equal(baseLoss, (await through.forwardBackward(batch, { backward: false })).loss);
  await direct.enableLoraAsync({ ...SETTINGS, baseBf16: true });
  assert.equal(direct.memory().baseBytesPerParam, 2);
  assert.equal(await lossWithAdapters(direct, 40000), await lossWithAdapters(through, 40000));
});

function peakOf(dir: string, how: LoadPath): LoadPeakResult {
  const out = execFileSync(process.execPath, [child, dir, how], { encoding: "utf8", timeout: 600_000 });
  return JSON.parse(out.trim().split("\n").at(-1)!) as LoadPeakResult;
}

test("reading a bf16 base from an F32 file holds no second full copy of it (peak RSS of a child process)", async () => {
  // About 19M parameters: a 39 MB bf16 base from a 77 MB F32 file.
  const config = parseHfConfig(
    tinyLlamaConfig({
      vocab_size: 32000,
      hidden_size: 256,
      intermediate_size: 688,
      num_hidden_layers: 4,
      num_attention_heads: 4,
      num_key_value_heads: 2,
    }),
    "config.json",
  );
  const dir = path.join(tempDir(), "base");
  await saveModel(await initModel(config, 3), config, dir, { dtype: "F32" });
  const direct = peakOf(dir, "direct");
  const through = peakOf(dir, "through-fp32");
  const grew = (r: LoadPeakResult) => r.peakBytes - r.baselineBytes;
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const seen = `direct ${mb(grew(direct))}, through fp32 ${mb(grew(through))}, bf16 base ${mb(direct.baseBytes)}`;
  // The direct load holds the bf16 base, the fp32 staging of one layer and a head tile, and a 1 MiB
  // conversion buffer per thread: any second copy of the base, even in bf16, would double it. Through fp32
  // holds the fp32 base (2x the bf16 bytes) and the bf16 copy at once.
  assert.ok(grew(direct) < 2 * direct.baseBytes, `the direct load holds a second copy of the base: ${seen}`);
  assert.ok(grew(through) > 2.5 * through.baseBytes, `the fp32 path should hold both copies: ${seen}`);
});
