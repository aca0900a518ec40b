// The memory estimate against the native core's own memory report, for three model shapes and the three
// methods: each model is built natively, trained for one micro-batch (activations are allocated on first
// use), and its report compared with what the estimate predicted from the shape alone.
import { test } from "node:test";
import assert from "node:assert/strict";
import os from "node:os";
import { loadAddon, type MemoryReport, type NativeBatch, type NativeModel } from "../../native/js/addon.js";
import { parseHfConfig } from "../../hf/hf_config.js";
import {
  baseParamCount,
  estimateMemory,
  loraParamCount,
  type BasePrecision,
  type LoraShape,
  type ModelShape,
  type PhaseEstimate,
} from "../../spec/memory_estimate.js";

// Shapes small enough to step in seconds, large enough that the vocabulary, the MLP and attention each
// weigh in: GQA with an untied head; Qwen2-style tied embeddings with q/k/v biases; MHA with every bias.
const SHAPES: { name: string; config: Record<string, unknown>; rows: number; seqLen: number }[] = [
  {
    name: "llama gqa untied",
    config: { vocab_size: 4096, hidden_size: 256, intermediate_size: 704, num_hidden_layers: 4 },
    rows: 2,
    seqLen: 128,
  },
  {
    name: "qwen2 tied qkv-bias",
    config: {
      architectures: ["Qwen2ForCausalLM"],
      model_type: "qwen2",
      vocab_size: 8192,
      hidden_size: 192,
      intermediate_size: 512,
      num_hidden_layers: 3,
      num_attention_heads: 6,
      num_key_value_heads: 2,
      tie_word_embeddings: true,
    },
    rows: 1,
    seqLen: 256,
  },
  {
    name: "llama mha all biases",
    config: {
      vocab_size: 2048,
      hidden_size: 320,
      intermediate_size: 864,
      num_hidden_layers: 2,
      num_attention_heads: 5,
      num_key_value_heads: 5,
      attention_bias: true,
      mlp_bias: true,
    },
    rows: 3,
    seqLen: 64,
  },
];

const LORA = { rank: 8, alpha: 8, dropout: 0.05, targets: ["q_proj", "v_proj", "down_proj"], rslora: false, seed: 1 };
const threads = Number(process.env.OMP_NUM_THREADS) || os.availableParallelism();

function configOf(over: Record<string, unknown>) {
  return parseHfConfig(
    { architectures: ["LlamaForCausalLM"], num_attention_heads: 8, num_key_value_heads: 2, ...over },
    "config.json",
  );
}

function batchOf(rows: number, seqLen: number, vocab: number): NativeBatch {
  const n = rows * seqLen;
  const inputIds = Int32Array.from({ length: n }, (_, i) => (i * 7919) % vocab);
  const labels = Int32Array.from({ length: n }, (_, i) => inputIds[(i + 1) % n]!);
  const positionIds = Int32Array.from({ length: n }, (_, i) => i % seqLen);
  // two packed examples per row, so attention runs over segments as in training
  const segmentIds = Int32Array.from({ length: n }, (_, i) => (i % seqLen < seqLen / 2 ? 0 : 1));
  for (let i = 0; i < n; i++) if (i % seqLen >= seqLen / 2) positionIds[i] = (i % seqLen) - seqLen / 2;
  return { rows, seqLen, inputIds, labels, positionIds, segmentIds };
}

async function trainOneMicroBatch(model: NativeModel, batch: NativeBatch): Promise<MemoryReport> {
  await model.forwardBackward(batch, { backward: true });
  return model.memory();
}

/** Bytes per frozen base weight the native report shows under LoRA (bf16 once the core stores it so). */
function nativeBasePrecision(report: MemoryReport, shape: ModelShape): BasePrecision {
  const adapters = loraParamCount(shape, LORA) * 4;
  return report.params - adapters === 2 * baseParamCount(shape) ? "bf16" : "fp32";
}

function assertClose(what: string, estimated: PhaseEstimate, measured: MemoryReport): void {
  const pairs: [string, number, number][] = [
    ["params", estimated.params, measured.params],
    ["grads", estimated.grads, measured.grads],
    ["optimizer", estimated.optimizer, measured.optimizer],
    ["activations", estimated.activations, measured.activations],
    ["total", estimated.total, measured.total],
  ];
  for (const [part, e, m] of pairs) {
    const error = Math.abs(e - m) / Math.max(m, 1);
    assert.ok(error <= 0.1, `${what}: ${part} estimated ${e} bytes, native report ${m} (${(100 * error).toFixed(1)}%)`);
  }
}

for (const s of SHAPES) {
  test(`the estimate is within 10% of the native memory report: ${s.name}, full, lora and hybrid`, async () => {
    const addon = loadAddon();
    const config = configOf(s.config);
    const shape = config.native;
    const batch = batchOf(s.rows, s.seqLen, shape.vocabSize);
    const common = { seqLen: s.seqLen, microBatchRows: [s.rows], evaluates: false, threads };
    const lora = (basePrecision: BasePrecision): LoraShape => ({ ...LORA, basePrecision });

    const full = addon.createModel(shape);
    const fullReport = await trainOneMicroBatch(full, batch);
    const fullEstimate = estimateMemory(shape, { ...common, method: "full" });
    assertClose("full", fullEstimate, fullReport);

    const frozen = addon.createModel(shape);
    frozen.enableLora(LORA);
    const loraReport = await trainOneMicroBatch(frozen, batch);
    const loraEstimate = estimateMemory(shape, {
      ...common,
      method: "lora",
      lora: lora(nativeBasePrecision(loraReport, shape)),
    });
    assertClose("lora", loraEstimate, loraReport);
    assert.equal(loraReport.grads, loraParamCount(shape, LORA) * 4, "LoRA: gradients of the adapters only");

    // hybrid: full steps, then the switch to adapters on the same model; the peak is the larger phase
    full.enableLora(LORA);
    const afterSwitch = await trainOneMicroBatch(full, batch);
    const hybridEstimate = estimateMemory(shape, {
      ...common,
      method: "hybrid",
      lora: lora(nativeBasePrecision(afterSwitch, shape)),
    });
    assertClose("hybrid, full phase", hybridEstimate.phases[0]!, fullReport);
    assertClose("hybrid, LoRA phase", hybridEstimate.phases[1]!, afterSwitch);
    const peak = Math.max(fullReport.total, afterSwitch.total);
    assert.ok(
      Math.abs(hybridEstimate.total - peak) / peak <= 0.1,
      `hybrid peak ${peak}, estimated ${hybridEstimate.total}`,
    );
  });
}
