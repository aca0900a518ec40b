#pragma once
// The shapes `make bench-gpu` measures (the same ones bench/cuda/torch_step.py builds in PyTorch), and the tiny
// smoke shape that runs under the CUDA emulator in `make test`.
#include <cstring>
#include <string>
#include <vector>
#include "config.h"

namespace rt::bench {

struct BenchShape {
  const char* name;
  ModelConfig c;
  int rows, seq;  // rows of seq tokens per step (one packed row = one segment here, as PyTorch's is_causal)
  bool lora;      // LoRA rank 16 on every linear of every layer, base frozen
};

inline ModelConfig llama_124m() {  // 124M-class: the bench model since the first CUDA bench
  ModelConfig c;
  c.vocab_size = 32000, c.hidden_size = 768, c.intermediate_size = 2048, c.num_layers = 12;
  c.num_heads = 12, c.num_kv_heads = 4, c.head_dim = 64, c.rope_theta = 10000, c.rms_norm_eps = 1e-5;
  return c;
}
inline ModelConfig qwen25(int hidden, int inter, int layers, int heads, int head_dim) {  // Qwen2.5 family
  ModelConfig c;
  c.vocab_size = 151936, c.hidden_size = hidden, c.intermediate_size = inter, c.num_layers = layers;
  c.num_heads = heads, c.num_kv_heads = 2, c.head_dim = head_dim, c.rope_theta = 1000000, c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = true, c.qkv_bias = true;
  return c;
}

inline std::vector<BenchShape> suite_shapes() {
  return {{"124m", llama_124m(), 8, 2048, false},
          {"qwen2.5-0.5b", qwen25(896, 4864, 24, 14, 64), 4, 2048, false},
          {"qwen2.5-1.5b-lora", qwen25(1536, 8960, 28, 12, 128), 2, 2048, true}};
}

// One iteration of everything on shapes the emulator runs in seconds: head dims 64 and 128, LoRA on one.
inline std::vector<BenchShape> smoke_shapes() {
  ModelConfig a = llama_124m();
  a.vocab_size = 256, a.hidden_size = 128, a.intermediate_size = 256, a.num_layers = 2;
  a.num_heads = 2, a.num_kv_heads = 1, a.head_dim = 64;
  ModelConfig b = qwen25(128, 256, 1, 1, 128);
  b.vocab_size = 256, b.num_kv_heads = 1;
  return {{"smoke-d64", a, 1, 96, false}, {"smoke-d128-lora", b, 1, 80, true}};
}

inline const BenchShape* find_shape(const std::vector<BenchShape>& all, const std::string& name) {
  for (const BenchShape& s : all)
    if (name == s.name) return &s;
  return nullptr;
}

// Multiply-adds of the matmuls per token: every linear of every layer and the head.
inline double matmul_params(const ModelConfig& c) {
  const double C = c.hidden_size, I = c.intermediate_size;
  return c.num_layers * (C * c.q_dim() * 2 + 2.0 * C * c.kv_dim() + 3.0 * C * I) + (double)c.vocab_size * C;
}
// LoRA rank-r adapter weights on the seven linears of every layer.
inline double lora_params(const ModelConfig& c, int rank) {
  const double C = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  return c.num_layers * rank * ((C + Q) * 2 + 2 * (C + KV) + 3 * (C + I));
}
// Causal query-key pairs of `rows` rows of `seq` tokens, one segment each.
inline double causal_pairs(int rows, int seq) { return (double)rows * seq * (seq + 1) / 2; }

}  // namespace rt::bench
