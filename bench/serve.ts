// Serving many adapters over one base: (1) memory of one base + 10 rank-16 adapters against 10 merged
// models (target: at most 1.2x one model); (2) tokens/s of 16 concurrent requests over 4 adapters decoded
// in one batch against the same requests one at a time (target: at least 4x); (3) time to first token
// alone and while 15 other requests decode. The bench model: vocab 32000, hidden 512, 8 layers; memory also
// for Qwen2.5-0.5B's shape.
// Run: make bench-serve   (or: node dist/bench/serve.js [--new-tokens N]); the last line is JSON.
import { loadAddon, type BatchedDecoder, type NativeModel } from "../native/js/addon.js";
import { initModel } from "../hf/hf_model.js";
import { parseHfConfig } from "../hf/hf_config.js";
import { GenerationEngine } from "../serving/engine.js";
import { qwenShape } from "./model_shapes.js";

const CONFIG = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 32000,
  hidden_size: 512,
  intermediate_size: 1408,
  num_hidden_layers: 8,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  rms_norm_eps: 1e-5,
  max_position_embeddings: 2048,
  initializer_range: 0.02,
  bos_token_id: 1,
  eos_token_id: 2,
};
const ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
// Short prompts: the bench is about the decode steps, where one batch reads the weights once for all rows.
const PROMPT_TOKENS = 8;

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function addAdapters(d: BatchedDecoder, first: number, count: number, targets: string[]): void {
  for (let id = first; id < first + count; id++) {
    const { data } = d.addAdapter(id, { rank: 16, alpha: 32, targets, rslora: false });
    // Small nonzero weights: the products are computed like a trained adapter's.
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(id * 7919 + i) * 0.01;
  }
}

/** baseBf16: the base rounded to bf16 first (in place: the model is bf16 from then on). */
function memory(shape: string, base: NativeModel, targets: string[], baseBf16 = false) {
  const d = loadAddon().createBatchedDecoder(base, { baseBf16 });
  addAdapters(d, 0, 10, targets);
  const m = d.memory();
  // Merged models are fp32 whatever the serving base is held in.
  const one = (m.base / m.baseBytesPerParam) * 4;
  return {
    shape: baseBf16 ? `${shape} (bf16 base)` : shape,
    base_bytes: m.base,
    targets: targets.join(","),
    one_model_bytes: one,
    base_plus_10_adapters_bytes: m.base + m.adapters,
    ten_merged_models_bytes: 10 * one,
    ratio_to_one_model: (m.base + m.adapters) / one,
    ratio_to_ten_merged: (m.base + m.adapters) / (10 * one),
  };
}

function prompt(i: number): Int32Array {
  return Int32Array.from({ length: PROMPT_TOKENS }, (_, k) => 3 + ((i * 131 + k * 17) % 31000));
}

async function timeRequests(engine: GenerationEngine, adapters: number, requests: number, newTokens: number) {
  const t0 = performance.now();
  const results = await Promise.all(
    Array.from({ length: requests }, (_, i) =>
      engine.generate({
        adapter: i % adapters,
        promptIds: prompt(i),
        maxTokens: newTokens,
        temperature: 0,
        topP: 1,
        seed: 0,
        stopIds: new Set(),
        stopStrings: [],
        decode: () => "",
      }),
    ),
  );
  const seconds = (performance.now() - t0) / 1000;
  const tokens = results.reduce((s, r) => s + r.tokenIds.length, 0);
  return { seconds, tokens, tokens_per_s: tokens / seconds };
}

async function firstToken(engine: GenerationEngine, adapter: number): Promise<number> {
  const t0 = performance.now();
  await engine.generate({
    adapter,
    promptIds: prompt(999),
    maxTokens: 1,
    temperature: 0,
    topP: 1,
    seed: 0,
    stopIds: new Set(),
    stopStrings: [],
    decode: () => "",
  });
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const newTokens = flag("new-tokens", 32);
  const base = await initModel(parseHfConfig(CONFIG, "bench config"), 1);
  // Qwen2.5-0.5B's shape, for the memory comparison only (weights left at zero: only their bytes count).
  const qwen = await loadAddon().createModelAsync(qwenShape("0.5b"));
  const mem = [
    memory("bench", base, ALL_LINEAR),
    memory("bench", base, ["q_proj", "v_proj"]),
    memory("Qwen2.5-0.5B", qwen, ALL_LINEAR),
    // last: it rounds the Qwen-shaped base to bf16 for good
    memory("Qwen2.5-0.5B", qwen, ALL_LINEAR, true),
  ];
  for (const m of mem)
    console.log(
      `memory, ${m.shape} model, rank 16 on ${m.targets}: base + 10 adapters ${(m.base_plus_10_adapters_bytes / 2 ** 20).toFixed(1)} MiB = ` +
        `${m.ratio_to_one_model.toFixed(3)}x one model; 10 merged models ${(m.ten_merged_models_bytes / 2 ** 20).toFixed(1)} MiB`,
    );

  const decoder = loadAddon().createBatchedDecoder(base);
  addAdapters(decoder, 0, 4, ALL_LINEAR);
  const batched = new GenerationEngine(decoder, { maxBatch: 16 });
  const serial = new GenerationEngine(decoder, { maxBatch: 1 });
  await timeRequests(batched, 4, 4, 2); // warm-up: thread pools, first allocations
  const ttftAlone = await firstToken(batched, 0);
  const b = await timeRequests(batched, 4, 16, newTokens);
  const s = await timeRequests(serial, 4, 16, newTokens);
  // Time to first token of a request arriving while 15 others decode.
  const busy = timeRequests(batched, 4, 15, newTokens);
  await new Promise((r) => setTimeout(r, 50));
  const ttftLoaded = await firstToken(batched, 1);
  await busy;
  const speedup = b.tokens_per_s / s.tokens_per_s;
  console.log(
    `16 requests x ${newTokens} new tokens over 4 rank-16 adapters: batched ${b.tokens_per_s.toFixed(1)} tok/s, ` +
      `one at a time ${s.tokens_per_s.toFixed(1)} tok/s: ${speedup.toFixed(2)}x (target >= 4x)`,
  );
  console.log(
    `time to first token (${PROMPT_TOKENS}-token prompt): alone ${ttftAlone.toFixed(1)} ms, beside 15 decoding ${ttftLoaded.toFixed(1)} ms`,
  );
  console.log(
    JSON.stringify({
      bench: "serve",
      model: { vocab: CONFIG.vocab_size, hidden: CONFIG.hidden_size, layers: CONFIG.num_hidden_layers },
      memory: mem,
      memory_target_met: mem.map((m) => m.ratio_to_one_model <= 1.2),
      throughput: { new_tokens: newTokens, requests: 16, adapters: 4, batched: b, one_at_a_time: s, speedup },
      throughput_target_met: speedup >= 4,
      ttft_ms: { alone: ttftAlone, beside_15_decoding: ttftLoaded },
    }),
  );
}

await main();
