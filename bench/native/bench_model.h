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

// The sequence-parallelism bench model: attention-dominated and small enough that one training step of a
// 16384-token row takes seconds on two CPU cores. vocab 1024, hidden 64, intermediate 176, 2 layers, 2 heads of
// 32 with their own K/V: the attention work per row is the same shape as a large model's, scaled down in width,
// and one worker's attention still splits over two cores (one task per key/value head).
inline rt::ModelConfig sequence_parallel_bench_model_config() {
  rt::ModelConfig c;
  c.vocab_size = 1024;
  c.hidden_size = 64;
  c.intermediate_size = 176;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 2;
  c.head_dim = 32;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000;
  return c;
}
