#pragma once
// The native-core bench model: vocab 32000, hidden 512, intermediate 1408, 8 layers, 8 heads, 2 KV heads.
#include "config.h"

inline rt::ModelConfig bench_model_config() {
  rt::ModelConfig c;
  c.vocab_size = 32000;
  c.hidden_size = 512;
  c.intermediate_size = 1408;
  c.num_layers = 8;
  c.num_heads = 8;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000;
  return c;
}
