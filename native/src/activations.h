#pragma once
// Everything the forward keeps for the backward, plus backward scratch, for one (rows, seq_len) shape.
// Allocated once per shape and reused by every step of that shape: no allocation inside a step.
#include <array>
#include <cstdint>
#include <vector>
#include "config.h"
#include "lora.h"
#include "ops/attention.h"

namespace rt {

template <typename T>
struct LayerActivations {
  std::vector<T> res_in;   // (N, C)  residual stream entering the layer
  std::vector<T> rstd1;    // (N)
  std::vector<T> ln1;      // (N, C)
  std::vector<T> q;        // (N, H*D)   after RoPE
  std::vector<T> k;        // (N, KVH*D) after RoPE
  std::vector<T> v;        // (N, KVH*D)
  std::vector<T> att;      // (N, H*D)   attention output before o_proj
  std::vector<T> lse;      // (B, H, T)  softmax log-sum-exp per query
  std::vector<T> res_mid;  // (N, C)  residual stream after attention
  std::vector<T> rstd2;    // (N)
  std::vector<T> ln2;      // (N, C)
  std::vector<T> gate;     // (N, I)
  std::vector<T> up;       // (N, I)
  std::vector<T> h;        // (N, I)  silu(gate) * up
  // LoRA, per target module: u = dropout(x) A^T (N, r); with dropout, the kept mask (N, in) and
  // dropout(x) (N, in), since the adapter sees a different input than the base weight
  std::array<std::vector<T>, kNumTargets> lora_u, lora_x;
  std::array<std::vector<uint8_t>, kNumTargets> lora_keep;
};

template <typename T>
struct Activations {
  int B, T_;
  size_t N;
  std::vector<LayerActivations<T>> layers;
  std::vector<T> res_out;   // (N, C)  after the last layer
  std::vector<T> rstdf;     // (N)
  std::vector<T> lnf;       // (N, C)
  std::vector<T> logits;    // (N, V)  becomes dlogits in place unless the logits are kept
  std::vector<T> dlogits;   // (N, V)  only once a caller asked to keep logits
  std::vector<T> losses;    // (N)
  // backward scratch, shared by all layers
  std::vector<T> dres, dln, dtmp, dq, dk, dv, datt, dgate, dup, dh;
  std::vector<T> lora_du, lora_dx;  // LoRA backward scratch: (N, r) and (N, widest input)
  AttentionScratch<T> attn_scratch;
  std::vector<SegmentRun> runs;

  // lora: the adapters' settings when LoRA is on (null in full training)
  Activations(const ModelConfig& c, int rows, int seq_len, const LoraConfig* lora, const LoraTable* table);
  size_t bytes() const;
};

}  // namespace rt
