// The Qwen2.5 models that real fine-tuning jobs start from, as their published config.json files describe
// them (only the fields that size a model). Benchmarks and memory tests size against these; a shape here is
// random-initialised, never downloaded.
import { parseHfConfig } from "../hf/hf_config.js";
import type { NativeModelConfig } from "../native/js/addon.js";

const QWEN2 = {
  architectures: ["Qwen2ForCausalLM"],
  model_type: "qwen2",
  hidden_act: "silu",
  rms_norm_eps: 1e-6,
  rope_theta: 1000000,
  max_position_embeddings: 32768,
  initializer_range: 0.02,
  bos_token_id: 151643,
  eos_token_id: 151645,
};

/** config.json of Qwen2.5-0.5B, -1.5B and -7B (q/k/v projections with biases, as in every Qwen2). */
export const QWEN25_CONFIGS = {
  "0.5b": {
    ...QWEN2,
    vocab_size: 151936,
    hidden_size: 896,
    intermediate_size: 4864,
    num_hidden_layers: 24,
    num_attention_heads: 14,
    num_key_value_heads: 2,
    tie_word_embeddings: true,
  },
  "1.5b": {
    ...QWEN2,
    vocab_size: 151936,
    hidden_size: 1536,
    intermediate_size: 8960,
    num_hidden_layers: 28,
    num_attention_heads: 12,
    num_key_value_heads: 2,
    tie_word_embeddings: true,
  },
  "7b": {
    ...QWEN2,
    vocab_size: 152064,
    hidden_size: 3584,
    intermediate_size: 18944,
    num_hidden_layers: 28,
    num_attention_heads: 28,
    num_key_value_heads: 4,
    tie_word_embeddings: false,
  },
} as const;

export type QwenSize = keyof typeof QWEN25_CONFIGS;

/** The native core's config of a Qwen2.5 shape, through the same parser a model folder's config.json goes. */
export function qwenShape(size: QwenSize): NativeModelConfig {
  return parseHfConfig(QWEN25_CONFIGS[size], `Qwen2.5-${size.toUpperCase()} config`).native;
}
