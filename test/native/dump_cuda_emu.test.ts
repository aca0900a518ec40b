// `ringtune dump --device cuda-emu` runs the product model over the CUDA backend on the CUDA emulator: its
// loss, logits and every gradient equal `--device cpu`'s within 1e-5 relative to each tensor's largest value
// (fp32), for a Llama and a Qwen2 (q/k/v biases, tied embeddings) config, on packed rows with ignored labels.
// With --precision bf16 (GEMMs and attention on bf16 operands over fp32 weights) each tensor is within
// BF16_REL_L2 of the CPU's in relative L2 error, |got - want| / |want|, and bf16's rounding shows.
// The device proof runs this file on a GPU (RINGTUNE_TEST_DEVICE=cuda, test/helpers/evidence_device.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { readSafetensorsHeader, readTensorsF32 } from "../../hf/safetensors.js";
import { EVIDENCE_DEVICE, evidenceSkip } from "../helpers/evidence_device.js";
import { tempDir, tinyLlamaConfig, writeJson } from "../helpers/native_files.js";
import { runCli } from "../helpers/run_cli.js";

// Head dim 32: a size the CUDA attention kernels are built for.
/**
 * bf16 against the CPU's fp32, measured under the emulator: up to 5e-2 on a gradient tensor (these configs' large
 * initial weights), 2.6e-2 on the logits, 1e-3 on the loss; about 3x the largest as the bound.
 */
const BF16_REL_L2 = 0.15;
const shape = {
  hidden_size: 64,
  intermediate_size: 48,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  initializer_range: 0.2, // far from a uniform prediction, so the logits and gradients carry signal
};
const configs: [string, Record<string, unknown>][] = [
  ["llama", tinyLlamaConfig(shape)],
  [
    "qwen2",
    tinyLlamaConfig({
      ...shape,
      architectures: ["Qwen2ForCausalLM"],
      model_type: "qwen2",
      tie_word_embeddings: true,
    }),
  ],
];

async function dumped(file: string): Promise<Map<string, Float32Array>> {
  const header = await readSafetensorsHeader(file);
  return readTensorsF32(
    header,
    [...header.tensors.values()].map((t) => t.name),
  );
}

for (const [name, cfg] of configs) {
  test(`dump --device ${EVIDENCE_DEVICE} equals --device cpu: loss, logits and every gradient (${name})`, async (t) => {
    const skip = evidenceSkip();
    if (skip) return t.skip(skip);
    const work = tempDir();
    writeJson(path.join(work, "config.json"), cfg);
    const modelDir = path.join(work, "model");
    const init = await runCli([
      "model",
      "init",
      "--config",
      path.join(work, "config.json"),
      "--seed",
      "7",
      "--out",
      modelDir,
    ]);
    assert.equal(init.code, 0, init.stderr);
    const batchFile = path.join(work, "batch.json");
    writeJson(batchFile, {
      input_ids: [
        [1, 5, 6, 7, 8, 9, 3, 4],
        [1, 10, 11, 1, 12, 13, 14, 15],
      ],
      labels: [
        [5, 6, 7, 8, 9, 2, -100, 30],
        [-100, 11, 2, -100, 13, 2, 31, 0],
      ],
      position_ids: [
        [0, 1, 2, 3, 4, 5, 6, 7],
        [0, 1, 2, 0, 1, 2, 3, 4],
      ],
      segment_ids: [
        [0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 1, 1, 1, 1],
      ],
    });
    const out: Record<string, Map<string, Float32Array>> = {};
    for (const [key, device, precision] of [
      ["cpu", "cpu", "fp32"],
      [EVIDENCE_DEVICE, EVIDENCE_DEVICE, "fp32"],
      ["bf16", EVIDENCE_DEVICE, "bf16"],
    ] as const) {
      const file = path.join(work, `${key}.safetensors`);
      const args = ["dump", "--model", modelDir, "--batch", batchFile, "--out", file, "--device", device];
      const r = await runCli([...args, "--precision", precision], {}, 120_000);
      assert.equal(r.code, 0, `${key}: ${r.stderr}`);
      out[key] = await dumped(file);
    }
    const cpu = out.cpu!,
      emu = out[EVIDENCE_DEVICE]!;
    assert.deepEqual([...emu.keys()].sort(), [...cpu.keys()].sort());
    let moved = 0;
    for (const [tensor, want] of cpu) {
      const got = emu.get(tensor)!;
      assert.equal(got.length, want.length, tensor);
      // fp32 sums taken in another order: each element within 1e-5 of the tensor's largest magnitude
      const scale = Math.max(...want.map(Math.abs));
      for (let i = 0; i < want.length; i++) {
        const diff = Math.abs(got[i]! - want[i]!);
        assert.ok(
          diff <= 1e-5 * scale,
          `${tensor}[${i}]: ${EVIDENCE_DEVICE} ${got[i]}, cpu ${want[i]} (largest ${scale})`,
        );
      }
      if (tensor.endsWith(".grad")) moved = Math.max(moved, ...want.map(Math.abs));
    }
    assert.ok(moved > 0, "the gradients are all zero: the comparison would prove nothing");
    let largest = 0;
    const errors: string[] = [];
    for (const [tensor, want] of cpu) {
      const got = out.bf16!.get(tensor)!;
      let d = 0,
        w = 0;
      for (let i = 0; i < want.length; i++) {
        d += (got[i]! - want[i]!) ** 2;
        w += want[i]! ** 2;
      }
      const rel = Math.sqrt(d) / Math.max(Math.sqrt(w), 1e-30);
      assert.ok(rel <= BF16_REL_L2, `bf16 ${tensor}: relative L2 error ${rel} above ${BF16_REL_L2}`);
      largest = Math.max(largest, rel);
      errors.push(`${tensor} ${rel.toExponential(2)}`);
    }
    t.diagnostic(`bf16 relative L2 errors: ${errors.join(", ")}`);
    assert.ok(largest > 1e-6, `bf16 errors at most ${largest}: the dump computed in fp32`);
  });
}
