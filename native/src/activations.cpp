#include "activations.h"
#include <algorithm>
#include "parallel.h"

namespace rt {

// A layer's buffers other than res_in (what the backward reads besides the layer's input).
template <typename T>
static void allocate_layer_internals(LayerActivations<T>& l, const ModelConfig& c, int B, int T_,
                                     const LoraConfig* lora, const LoraTable* table) {
  const size_t N = (size_t)B * T_, C = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  l.rstd1.resize(N);
  l.q.resize(N * Q);
  l.k.resize(N * KV);
  l.v.resize(N * KV);
  l.att.resize(N * Q);
  l.lse.resize((size_t)B * c.num_heads * T_);
  l.res_mid.resize(N * C);
  l.rstd2.resize(N);
  l.gate.resize(N * I);
  l.up.resize(N * I);
  if (!lora) return;
  for (int t = 0; t < kNumTargets; t++) {
    if (!table->targeted[t]) continue;
    const size_t in = (size_t)LoraTable::shape(c, t).first;
    l.lora_u[t].resize(N * lora->rank);
    if (lora->dropout > 0) {
      l.lora_x[t].resize(N * in);
      l.lora_keep[t].resize(N * in);
    }
  }
}

template <typename T>
static size_t layer_bytes(const LayerActivations<T>& l) {
  size_t n = 0, bytes_u8 = 0;
  for (const FlatVector<T>* b :
       {&l.res_in, &l.rstd1, &l.q, &l.k, &l.v, &l.att, &l.lse, &l.res_mid, &l.rstd2, &l.gate, &l.up})
    n += b->size();
  for (int t = 0; t < kNumTargets; t++) n += l.lora_u[t].size() + l.lora_x[t].size();
  for (int t = 0; t < kNumTargets; t++) bytes_u8 += l.lora_keep[t].size();
  return n * sizeof(T) + bytes_u8;
}

template <typename T>
Activations<T>::Activations(const ModelConfig& c, int B_, int T__, const LoraConfig* lora, const LoraTable* table,
                            bool checkpointed_)
    : B(B_), T_(T__), N((size_t)B_ * T__), checkpointed(checkpointed_) {
  const size_t C = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  layers.resize(c.num_layers);
  for (LayerActivations<T>& l : layers) {
    l.res_in.resize(N * C);
    if (!checkpointed) allocate_layer_internals(l, c, B, T_, lora, table);
  }
  if (checkpointed) allocate_layer_internals(recompute, c, B, T_, lora, table);
  if (lora) {
    size_t widest = 0;
    for (int t = 0; t < kNumTargets; t++)
      if (table->targeted[t]) widest = std::max(widest, (size_t)LoraTable::shape(c, t).first);
    lora_du.resize(N * lora->rank);
    if (lora->dropout > 0) lora_dx.resize(N * widest);
  }
  res_out.resize(N * C);
  rstdf.resize(N);
  lnf.resize(N * C);
  losses.resize(N);
  for (auto* b : {&ln, &dres, &dln, &dtmp}) b->resize(N * C);
  for (auto* b : {&dq, &datt}) b->resize(N * Q);
  for (auto* b : {&dk, &dv}) b->resize(N * KV);
  for (auto* b : {&h, &dgate, &dup}) b->resize(N * I);
  attn_scratch.reserve(max_threads(), T_);
  runs.reserve(N);
}

template <typename T>
size_t Activations<T>::bytes() const {
  size_t n = 0;
  size_t layer_total = layer_bytes(recompute);
  for (const LayerActivations<T>& l : layers) layer_total += layer_bytes(l);
  n += lora_du.size() + lora_dx.size();
  for (const FlatVector<T>* b : {&res_out, &rstdf, &lnf, &logits, &dlogits, &chunk, &losses, &ln, &h, &dres, &dln,
                                 &dtmp, &dq, &dk, &dv, &datt, &dgate, &dup})
    n += b->size();
  n += attn_scratch.buf.size();
  return n * sizeof(T) + layer_total;
}

template <typename T>
size_t Activations<T>::checkpointing_saved_bytes() const {
  if (!checkpointed || layers.empty()) return 0;
  const size_t internals = layer_bytes(recompute);  // one layer's buffers besides res_in
  return internals * (layers.size() - 1);
}

template struct Activations<float>;
template struct Activations<double>;

}  // namespace rt
