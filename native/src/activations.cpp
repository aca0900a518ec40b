#include "activations.h"
#include <algorithm>
#include "parallel.h"

namespace rt {

// A layer's buffers other than res_in (what the backward reads besides the layer's input).
template <typename T>
static void allocate_layer_internals(LayerActivations<T>& l, const ModelConfig& c, int B, int T_,
                                     const LoraConfig* lora, const LoraTable* table, const Backend<T>& ops) {
  const size_t N = (size_t)B * T_, C = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  l.rstd1.allocate(N, ops);
  l.q.allocate(N * Q, ops);
  l.k.allocate(N * KV, ops);
  l.v.allocate(N * KV, ops);
  l.att.allocate(N * Q, ops);
  l.lse.allocate((size_t)B * c.num_heads * T_, ops);
  l.res_mid.allocate(N * C, ops);
  l.rstd2.allocate(N, ops);
  l.gate.allocate(N * I, ops);
  l.up.allocate(N * I, ops);
  if (!lora) return;
  for (int t = 0; t < kNumTargets; t++) {
    if (!table->targeted[t]) continue;
    const size_t in = (size_t)LoraTable::shape(c, t).first;
    l.lora_u[t].allocate(N * lora->rank, ops);
    if (lora->dropout > 0) l.lora_x[t].allocate(N * in, ops);
  }
}

template <typename T>
static size_t layer_bytes(const LayerActivations<T>& l) {
  size_t n = 0;
  for (const BackendArray<T>* b :
       {&l.res_in, &l.rstd1, &l.q, &l.k, &l.v, &l.att, &l.lse, &l.res_mid, &l.rstd2, &l.gate, &l.up})
    n += b->size();
  for (int t = 0; t < kNumTargets; t++) n += l.lora_u[t].size() + l.lora_x[t].size();
  return n * sizeof(T);
}

template <typename T>
Activations<T>::Activations(const ModelConfig& c, int B_, int T__, const LoraConfig* lora, const LoraTable* table,
                            bool checkpointed_, const Backend<T>& ops)
    : B(B_), T_(T__), N((size_t)B_ * T__), checkpointed(checkpointed_) {
  const size_t C = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  layers.resize(c.num_layers);
  for (LayerActivations<T>& l : layers) {
    l.res_in.allocate(N * C, ops);
    if (!checkpointed) allocate_layer_internals(l, c, B, T_, lora, table, ops);
  }
  if (checkpointed) allocate_layer_internals(recompute, c, B, T_, lora, table, ops);
  if (lora) {
    size_t widest = 0;
    for (int t = 0; t < kNumTargets; t++)
      if (table->targeted[t]) widest = std::max(widest, (size_t)LoraTable::shape(c, t).first);
    lora_du.allocate(N * lora->rank, ops);
    if (lora->dropout > 0) lora_dx.allocate(N * widest, ops);
  }
  res_out.allocate(N * C, ops);
  rstdf.allocate(N, ops);
  lnf.allocate(N * C, ops);
  losses.allocate(N, ops);
  for (auto* b : {&ln, &dres, &dln, &dtmp}) b->allocate(N * C, ops);
  for (auto* b : {&dq, &datt}) b->allocate(N * Q, ops);
  for (auto* b : {&dk, &dv}) b->allocate(N * KV, ops);
  for (auto* b : {&h, &dgate, &dup}) b->allocate(N * I, ops);
  attn_scratch.reserve(max_threads(), T_);
  if (!ops.host_memory()) ids = ops.int_zeros(N), labels = ops.int_zeros(N), positions = ops.int_zeros(N);
  runs.reserve(N);
}

template <typename T>
size_t Activations<T>::bytes() const {
  size_t n = 0;
  size_t layer_total = layer_bytes(recompute);
  for (const LayerActivations<T>& l : layers) layer_total += layer_bytes(l);
  n += lora_du.size() + lora_dx.size();
  for (const BackendArray<T>* b : {&res_out, &rstdf, &lnf, &logits, &dlogits, &chunk, &losses, &label_weights, &ln, &h,
                                   &dres, &dln, &dtmp, &dq, &dk, &dv, &datt, &dgate, &dup})
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
