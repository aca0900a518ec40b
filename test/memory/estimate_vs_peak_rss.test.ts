// The memory estimate against what the operating system measures: each shape and method is built and
// trained for one step in a child process (as a worker builds it: a LoRA job's base created in bf16), and
// the child's peak resident memory above its warm baseline must be within 10% of the estimate's total.
// Shapes are a few hundred MB, so what Node and the BLAS library hold besides is small beside them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseHfConfig } from "../../hf/hf_config.js";
import { estimateMemory } from "../../spec/memory_estimate.js";
import type { PeakRssJob, PeakRssResult } from "../helpers/peak_rss_child.js";

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), "../helpers/peak_rss_child.js");
const LORA = { rank: 16, alpha: 32, dropout: 0, targets: ["q_proj", "v_proj", "down_proj"], rslora: false, seed: 1 };
const threads = Number(process.env.OMP_NUM_THREADS) || os.availableParallelism();

// An untied GQA model, a Qwen2-style tied model with q/k/v biases, an MHA model with every bias.
const SHAPES: { name: string; config: Record<string, unknown>; rows: number; seqLen: number }[] = [
  {
    name: "llama gqa untied (87M)",
    config: { vocab_size: 32000, hidden_size: 768, intermediate_size: 2048, num_hidden_layers: 6 },
    rows: 1,
    seqLen: 128,
  },
  {
    name: "qwen2 tied qkv-bias (68M)",
    config: {
      architectures: ["Qwen2ForCausalLM"],
      model_type: "qwen2",
      vocab_size: 64000,
      hidden_size: 640,
      intermediate_size: 1792,
      num_hidden_layers: 6,
      num_attention_heads: 10,
      num_key_value_heads: 2,
      tie_word_embeddings: true,
    },
    rows: 2,
    seqLen: 64,
  },
  {
    name: "llama mha all biases (84M)",
    config: {
      vocab_size: 16000,
      hidden_size: 1024,
      intermediate_size: 2816,
      num_hidden_layers: 4,
      num_attention_heads: 16,
      num_key_value_heads: 16,
      attention_bias: true,
      mlp_bias: true,
    },
    rows: 1,
    seqLen: 96,
  },
];

function shapeOf(over: Record<string, unknown>) {
  return parseHfConfig(
    { architectures: ["LlamaForCausalLM"], num_attention_heads: 12, num_key_value_heads: 4, ...over },
    "config.json",
  ).native;
}

const MiB = 2 ** 20;

for (const s of SHAPES) {
  for (const method of ["full", "lora", "hybrid"] as const) {
    test(`the estimate is within 10% of the measured peak RSS: ${s.name}, ${method}`, () => {
      const shape = shapeOf(s.config);
      const job: PeakRssJob = { shape, method, lora: LORA, rows: s.rows, seqLen: s.seqLen };
      const out = execFileSync(process.execPath, [child, JSON.stringify(job)], { encoding: "utf8", timeout: 600_000 });
      const r = JSON.parse(out.trim().split("\n").pop()!) as PeakRssResult;
      const measured = r.peakBytes - r.baselineBytes;
      const estimate = estimateMemory(shape, {
        method,
        lora: method === "full" ? undefined : { ...LORA, basePrecision: "bf16" },
        seqLen: s.seqLen,
        microBatchRows: [s.rows],
        evaluates: false,
        threads,
      }).total;
      const error = Math.abs(estimate - measured) / measured;
      assert.ok(
        error <= 0.1,
        `${s.name}, ${method}: estimated ${(estimate / MiB).toFixed(1)} MiB, measured peak ${(measured / MiB).toFixed(1)} ` +
          `MiB above a ${(r.baselineBytes / MiB).toFixed(0)} MiB baseline (${(100 * error).toFixed(1)}% off)`,
      );
    });
  }
}
