// Small model configs for tests: the tiny Llama the cluster tests train, and native configs of any size.
import type { NativeModelConfig } from "../../native/js/addon.js";

/** The tiny Llama config the cluster tests train: a byte tokenizer's 256 ids plus specials, two small layers. */
export const TINY_BYTE_LLAMA = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 272,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 256,
  tie_word_embeddings: false,
  initializer_range: 0.05,
  bos_token_id: 256,
  eos_token_id: 257,
};

/** TINY_BYTE_LLAMA with one head of 32: the CUDA attention kernels (cuda-emu workers) take head sizes 32, 64, 128. */
export const ONE_HEAD_BYTE_LLAMA = { ...TINY_BYTE_LLAMA, num_attention_heads: 1, num_key_value_heads: 1 };

/** One head of 64: the size the tensor-core attention kernels (and sequence parallelism's blocks on them) take. */
export const ONE_HEAD_64_BYTE_LLAMA = { ...ONE_HEAD_BYTE_LLAMA, hidden_size: 64 };

type Sizes = "vocabSize" | "hiddenSize" | "intermediateSize" | "numLayers" | "numHeads" | "numKvHeads" | "headDim";

/** A Llama of the given sizes as the native core takes it: no biases, untied embeddings, unscaled RoPE. */
export function nativeLlama(
  sizes: Pick<NativeModelConfig, Sizes>,
  more: Partial<Omit<NativeModelConfig, Sizes>> = {},
): NativeModelConfig {
  return {
    ...sizes,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    tieWordEmbeddings: false,
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    ropeScaling: null,
    ...more,
  };
}
