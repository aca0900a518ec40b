#pragma once
// The model's shape. Field meanings follow Hugging Face's LlamaConfig / Qwen2Config.
#include <string>

namespace rt {

struct RopeScaling {
  bool llama3 = false;  // rope_type "llama3": per-frequency scaling of inv_freq
  double factor = 1, low_freq_factor = 1, high_freq_factor = 4;
  int original_max_position_embeddings = 8192;
};

struct ModelConfig {
  int vocab_size = 0;
  int hidden_size = 0;        // C
  int intermediate_size = 0;  // I
  int num_layers = 0;         // L
  int num_heads = 0;          // H
  int num_kv_heads = 0;       // KVH (grouped-query attention when < H)
  int head_dim = 0;           // D
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;
  bool o_bias = false;
  bool mlp_bias = false;
  RopeScaling rope_scaling;

  int q_dim() const { return num_heads * head_dim; }
  int kv_dim() const { return num_kv_heads * head_dim; }
  void validate() const;
  std::string describe() const;
};

}  // namespace rt
