#include "model.h"

#include <algorithm>
#include <cmath>
#include "error.h"
#include "ops/adamw.h"
#include "ops/add.h"
#include "ops/cross_entropy.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"
#include "random.h"

namespace rt {

template <typename T>
Model<T>::Model(const ModelConfig& cfg) : cfg_(cfg), table_((cfg.validate(), cfg)), inv_freq_(rope_inv_freq(cfg)) {
  params_.assign(table_.total, T(0));
  grads_.assign(table_.total, T(0));
  m_.assign(table_.total, T(0));
  v_.assign(table_.total, T(0));
}

template <typename T>
MemoryReport Model<T>::memory() const {
  MemoryReport r;
  r.params = params_.size() * sizeof(T);
  r.grads = grads_.size() * sizeof(T);
  r.optimizer = (m_.size() + v_.size()) * sizeof(T);
  for (const auto& kv : acts_) r.activations += kv.second->bytes();
  return r;
}

template <typename T>
void Model<T>::init_random(uint64_t seed, double std) {
  for (size_t e = 0; e < table_.entries.size(); e++) {
    const ParamEntry& p = table_.entries[e];
    T* w = params_.data() + p.offset;
    const bool is_norm = p.name.find("norm.weight") != std::string::npos;
    if (p.shape.size() < 2) {
      std::fill(w, w + p.size, is_norm ? T(1) : T(0));
      continue;
    }
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < p.size; i++) w[i] = (T)(std * normal01(seed, e, i));
  }
  std::fill(m_.begin(), m_.end(), T(0));
  std::fill(v_.begin(), v_.end(), T(0));
  step_ = 0;
}

template <typename T>
void Model<T>::zero_grad() {
  std::fill(grads_.begin(), grads_.end(), T(0));
}

template <typename T>
Activations<T>& Model<T>::activations_for(int B, int T_) {
  auto key = std::make_pair(B, T_);
  auto it = acts_.find(key);
  if (it == acts_.end()) it = acts_.emplace(key, std::make_unique<Activations<T>>(cfg_, B, T_)).first;
  return *it->second;
}

static void check_batch(const Batch& b) {
  if (b.rows <= 0 || b.seq_len <= 0) fail("forward", "batch shape [", b.rows, ", ", b.seq_len, "] must be positive");
  if (!b.input_ids || !b.labels || !b.position_ids || !b.segment_ids)
    fail("forward", "batch needs input_ids, labels, position_ids and segment_ids");
  const size_t N = (size_t)b.rows * b.seq_len;
  for (size_t n = 0; n < N; n++)
    if (b.position_ids[n] < 0) fail("forward", "position id ", b.position_ids[n], " at ", n, " is negative");
}

template <typename T>
StepResult Model<T>::forward_backward(const Batch& b, const StepOptions& opts) {
  try {
    return forward_backward_unchecked(b, opts);
  } catch (const Error& e) {
    // Name the call and the shapes around the op's own message.
    fail("forward_backward", "batch [", b.rows, " rows x ", b.seq_len, " tokens], model (", cfg_.describe(), "): ", e.what());
  }
}

template <typename T>
StepResult Model<T>::forward_backward_unchecked(const Batch& b, const StepOptions& opts) {
  check_batch(b);
  Activations<T>& a = activations_for(b.rows, b.seq_len);
  last_ = &a;
  find_segment_runs(a.runs, b.segment_ids, b.rows, b.seq_len);
  forward(a, b);

  T* dlogits = nullptr;
  if (opts.backward) {
    if (opts.keep_logits) {
      if (a.dlogits.size() != a.logits.size()) a.dlogits.resize(a.logits.size());
      dlogits = a.dlogits.data();
    } else {
      dlogits = a.logits.data();  // consumed in place
    }
  }
  // The scale needs the target count, known before the loss: count first.
  int64_t targets = 0;
  for (size_t n = 0; n < a.N; n++) targets += b.labels[n] != kIgnoreIndex;
  const double scale = opts.loss_scale != 0 ? opts.loss_scale : (targets > 0 ? 1.0 / targets : 0.0);
  LossSum ls = cross_entropy_forward_backward(a.losses.data(), dlogits, a.logits.data(), b.labels, (int)a.N,
                                              cfg_.vocab_size, scale);
  if (opts.backward) backward(a, b, dlogits, opts.on_grads_ready);
  return {ls.sum, ls.count};
}

template <typename T>
const T* Model<T>::logits() const {
  return last_ ? last_->logits.data() : nullptr;
}

template <typename T>
const T* Model<T>::token_losses() const {
  return last_ ? last_->losses.data() : nullptr;
}

template <typename T>
void Model<T>::forward(Activations<T>& a, const Batch& b) {
  const ModelConfig& c = cfg_;
  const int N = (int)a.N, C = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  const AttentionShape shape{b.rows, b.seq_len, c.num_heads, c.num_kv_heads, c.head_dim};
  embedding_forward(a.layers[0].res_in.data(), b.input_ids, at(params_, table_.embed), N, C, c.vocab_size);
  for (int l = 0; l < c.num_layers; l++) {
    const LayerOffsets& o = table_.layers[l];
    LayerActivations<T>& la = a.layers[l];
    T* out = l + 1 < c.num_layers ? a.layers[l + 1].res_in.data() : a.res_out.data();
    rmsnorm_forward(la.ln1.data(), la.rstd1.data(), la.res_in.data(), at(params_, o.ln1), N, C, c.rms_norm_eps);
    linear_forward(la.q.data(), la.ln1.data(), at(params_, o.wq), at(params_, o.bq), N, C, Q);
    linear_forward(la.k.data(), la.ln1.data(), at(params_, o.wk), at(params_, o.bk), N, C, KV);
    linear_forward(la.v.data(), la.ln1.data(), at(params_, o.wv), at(params_, o.bv), N, C, KV);
    rope_forward(la.q.data(), b.position_ids, inv_freq_.data(), N, c.num_heads, c.head_dim);
    rope_forward(la.k.data(), b.position_ids, inv_freq_.data(), N, c.num_kv_heads, c.head_dim);
    attention_forward(la.att.data(), la.lse.data(), la.q.data(), la.k.data(), la.v.data(), a.runs, shape, a.attn_scratch);
    linear_forward(a.dtmp.data(), la.att.data(), at(params_, o.wo), at(params_, o.bo), N, Q, C);
    add(la.res_mid.data(), la.res_in.data(), a.dtmp.data(), a.N * C);
    rmsnorm_forward(la.ln2.data(), la.rstd2.data(), la.res_mid.data(), at(params_, o.ln2), N, C, c.rms_norm_eps);
    linear_forward(la.gate.data(), la.ln2.data(), at(params_, o.wg), at(params_, o.bg), N, C, I);
    linear_forward(la.up.data(), la.ln2.data(), at(params_, o.wu), at(params_, o.bu), N, C, I);
    swiglu_forward(la.h.data(), la.gate.data(), la.up.data(), a.N * I);
    linear_forward(a.dtmp.data(), la.h.data(), at(params_, o.wd), at(params_, o.bd), N, I, C);
    add(out, la.res_mid.data(), a.dtmp.data(), a.N * C);
  }
  rmsnorm_forward(a.lnf.data(), a.rstdf.data(), a.res_out.data(), at(params_, table_.final_norm), N, C, c.rms_norm_eps);
  linear_forward(a.logits.data(), a.lnf.data(), lm_head(), (const T*)nullptr, N, C, c.vocab_size);
}

template <typename T>
void Model<T>::backward(Activations<T>& a, const Batch& b, T* dlogits, const GradsReady& ready) {
  // Bucket boundaries follow the table's layout: embedding, layers 0..L-1, final norm (+ untied head).
  auto report = [&](size_t begin, size_t end) {
    if (ready) ready(begin, end - begin);
  };
  auto layer_end = [&](int l) { return l + 1 < cfg_.num_layers ? table_.layers[l + 1].ln1 : table_.final_norm; };
  const ModelConfig& c = cfg_;
  const int N = (int)a.N, C = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  const size_t NC = a.N * C;
  const AttentionShape shape{b.rows, b.seq_len, c.num_heads, c.num_kv_heads, c.head_dim};
  T *dres = a.dres.data(), *dln = a.dln.data(), *dtmp = a.dtmp.data();

  linear_backward(dln, dlm_head(), (T*)nullptr, dlogits, a.lnf.data(), lm_head(), N, C, c.vocab_size);
  rmsnorm_backward(dres, at(grads_, table_.final_norm), dln, a.res_out.data(), at(params_, table_.final_norm),
                   a.rstdf.data(), N, C);
  // With a tied head its gradient lives in the embedding, which is reported last.
  report(table_.final_norm, table_.total);
  for (int l = c.num_layers - 1; l >= 0; l--) {
    const LayerOffsets& o = table_.layers[l];
    LayerActivations<T>& la = a.layers[l];
    // dres holds d(layer output). MLP branch: out = res_mid + down(silu(gate(ln2)) * up(ln2))
    linear_backward(a.dh.data(), at(grads_, o.wd), at(grads_, o.bd), dres, la.h.data(), at(params_, o.wd), N, I, C);
    swiglu_backward(a.dgate.data(), a.dup.data(), a.dh.data(), la.gate.data(), la.up.data(), a.N * I);
    linear_backward(dln, at(grads_, o.wg), at(grads_, o.bg), a.dgate.data(), la.ln2.data(), at(params_, o.wg), N, C, I);
    linear_backward(dtmp, at(grads_, o.wu), at(grads_, o.bu), a.dup.data(), la.ln2.data(), at(params_, o.wu), N, C, I);
    add_inplace(dln, dtmp, NC);
    rmsnorm_backward(dtmp, at(grads_, o.ln2), dln, la.res_mid.data(), at(params_, o.ln2), la.rstd2.data(), N, C);
    add_inplace(dres, dtmp, NC);  // now d(res_mid)
    // Attention branch: res_mid = res_in + o_proj(attention(rope(q), rope(k), v))
    linear_backward(a.datt.data(), at(grads_, o.wo), at(grads_, o.bo), dres, la.att.data(), at(params_, o.wo), N, Q, C);
    attention_backward(a.dq.data(), a.dk.data(), a.dv.data(), a.datt.data(), la.q.data(), la.k.data(), la.v.data(),
                       la.att.data(), la.lse.data(), a.runs, shape, a.attn_scratch);
    rope_backward(a.dq.data(), b.position_ids, inv_freq_.data(), N, c.num_heads, c.head_dim);
    rope_backward(a.dk.data(), b.position_ids, inv_freq_.data(), N, c.num_kv_heads, c.head_dim);
    linear_backward(dln, at(grads_, o.wq), at(grads_, o.bq), a.dq.data(), la.ln1.data(), at(params_, o.wq), N, C, Q);
    linear_backward(dtmp, at(grads_, o.wk), at(grads_, o.bk), a.dk.data(), la.ln1.data(), at(params_, o.wk), N, C, KV);
    add_inplace(dln, dtmp, NC);
    linear_backward(dtmp, at(grads_, o.wv), at(grads_, o.bv), a.dv.data(), la.ln1.data(), at(params_, o.wv), N, C, KV);
    add_inplace(dln, dtmp, NC);
    rmsnorm_backward(dtmp, at(grads_, o.ln1), dln, la.res_in.data(), at(params_, o.ln1), la.rstd1.data(), N, C);
    add_inplace(dres, dtmp, NC);  // now d(res_in)
    report(o.ln1, layer_end(l));
  }
  embedding_backward(at(grads_, table_.embed), dres, b.input_ids, N, C);
  report(0, table_.layers[0].ln1);
}

template <typename T>
AdamWResult Model<T>::adamw_step(const AdamWOptions& o) {
  if (!(o.lr >= 0) || !(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1) || !(o.eps > 0))
    fail("adamw_step", "invalid options: lr ", o.lr, ", betas (", o.beta1, ", ", o.beta2, "), eps ", o.eps);
  const double norm = std::sqrt(sum_of_squares(grads_.data(), grads_.size()));
  if (!std::isfinite(norm)) fail("adamw_step", "gradient norm is ", norm, ": refusing to update the weights");
  // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.
  double clip = 1;
  if (o.max_grad_norm > 0) clip = std::min(1.0, o.max_grad_norm / (norm + 1e-6));
  step_ += 1;
  AdamWStep s{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay,
              1 - std::pow(o.beta1, (double)step_), 1 - std::pow(o.beta2, (double)step_), clip};
  for (const ParamEntry& p : table_.entries)
    adamw_update(params_.data() + p.offset, grads_.data() + p.offset, m_.data() + p.offset, v_.data() + p.offset,
                 p.size, s, p.decay);
  return {norm, step_};
}

template class Model<float>;
template class Model<double>;

}  // namespace rt
