#include "model.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
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
#include "tensor_io.h"

namespace rt {

// Only the weights: gradients and moments come with the first training use (ensure_training_state).
template <typename T>
Model<T>::Model(const ModelConfig& cfg, const Backend<T>& backend, bool base_bf16)
    : cfg_(cfg), table_((cfg.validate(), cfg)), inv_freq_(rope_inv_freq(cfg)), ops_(backend) {
  if (!base_bf16) {
    params_ = ops_.zeros(table_.total);
    ops_.keep_compute_copy(params_);  // a bf16-compute backend's copy for its GEMMs
    return;
  }
  base16_ = ops_.bf16_zeros(table_.total);
  stage_bf16_base();
}

template <typename T>
Model<T>::Model(const Model& base, SharedWeights)
    : cfg_(base.cfg_), table_(base.table_), inv_freq_(base.inv_freq_), ops_(base.ops_) {
  share_weights_of(base);
}

template <typename T>
void Model<T>::share_weights_of(const Model& base) {
  if (base.lora_) fail("share_weights_of", "the base model carries LoRA adapters; share a plain base");
  params_ = base.params_;
  if (params_) ops_.keep_compute_copy(params_);
  if (base16_ == base.base16_) return;
  base16_ = base.base16_;
  if (base16_) stage_bf16_base();
}

template <typename T>
void Model<T>::require_host_memory(const char* what) const {
  if (!ops_.host_memory())
    fail("model", what, " is computed on the host; the ", ops_.name(), " backend's memory is not");
}

template <typename T>
void Model<T>::ensure_training_state() {
  if (grads_) return;
  const size_t n = num_trainable();
  grads_ = ops_.zeros(n);
  m_ = ops_.zeros(optimizer_elements());
  v_ = ops_.zeros(optimizer_elements());
}

template <typename T>
MemoryReport Model<T>::memory() const {
  MemoryReport r;
  r.base_bytes_per_param = base16_ ? 2 : (int)sizeof(T);
  r.base_params = table_.total * r.base_bytes_per_param;
  r.adapter_params = num_lora_params() * sizeof(T);
  r.params = r.base_params + r.adapter_params;
  r.grads = grads_ ? grads_->size() * sizeof(T) : 0;
  r.optimizer = m_ ? (m_->size() + v_->size()) * sizeof(T) : 0;
  r.optimizer_unsharded = m_ ? 2 * num_trainable() * sizeof(T) : 0;
  r.scratch = (stage_.size() + stage_norm_.size() + stage_head_.size()) * sizeof(T);
  r.activations = r.scratch;
  for (const auto& kv : acts_) {
    r.activations += kv.second->bytes();
    r.activations_saved += kv.second->checkpointing_saved_bytes();
  }
  return r;
}

// ---- a frozen base in bf16 -------------------------------------------------------------------------------

// One layer's parameters are contiguous, from its first norm to the next layer's (or the final norm).
static std::pair<size_t, size_t> layer_range(const ParamTable& t, int l) {
  const size_t end = l + 1 < (int)t.layers.size() ? t.layers[l + 1].ln1 : t.final_norm;
  return {t.layers[l].ln1, end};
}

template <typename T>
void Model<T>::stage_layer(int l) {
  if (!base16_ || staged_layer_ == l) return;
  const auto [begin, end] = layer_range(table_, l);
  ops_.widen_bf16(stage_.data(), base16_->data() + begin, end - begin);
  staged_layer_ = l;
}

template <typename T>
T* Model<T>::staged(size_t off) {
  if (off == table_.final_norm) return stage_norm_.data();
  if (staged_layer_ >= 0) {
    const auto [begin, end] = layer_range(table_, staged_layer_);
    if (off >= begin && off < end) return stage_.data() + (off - begin);
  }
  fail("bf16 base", "parameter at offset ", off, " is not in the staged layer ", staged_layer_);
}

template <typename T>
const T* Model<T>::head_tile(int v0, int rows) {
  const size_t C = cfg_.hidden_size, off = cfg_.tie_word_embeddings ? table_.embed : table_.lm_head;
  ops_.widen_bf16(stage_head_.data(), base16_->data() + off + (size_t)v0 * C, (size_t)rows * C);
  return stage_head_.data();
}

template <typename T>
void Model<T>::head_logits(T* z, const T* x, int n) {
  const int C = cfg_.hidden_size, V = cfg_.vocab_size;
  if (!base16_) return ops_.linear_forward(z, x, lm_head(), (const T*)nullptr, n, C, V);
  for (int v0 = 0; v0 < V; v0 += kHeadTile) {
    const int rows = std::min(kHeadTile, V - v0);
    // z[:, v0:v0+rows] = x W[v0:v0+rows]^T
    ops_.gemm(false, true, n, rows, C, T(1), x, C, head_tile(v0, rows), C, T(0), z + v0, V);
  }
}

template <typename T>
void Model<T>::head_input_grad(T* dx, const T* dz, const T* x, int n) {
  const int C = cfg_.hidden_size, V = cfg_.vocab_size;
  if (!base16_) return ops_.linear_backward(dx, (T*)nullptr, (T*)nullptr, dz, x, lm_head(), n, C, V);
  for (int v0 = 0; v0 < V; v0 += kHeadTile) {
    const int rows = std::min(kHeadTile, V - v0);
    // dx = sum over tiles of dz[:, v0:v0+rows] W[v0:v0+rows]
    ops_.gemm(false, false, n, C, rows, T(1), dz + v0, V, head_tile(v0, rows), C, v0 == 0 ? T(0) : T(1), dx, C);
  }
}

template <typename T>
void Model<T>::widen_base_to_fp32() {
  auto full = ops_.zeros(table_.total);
  ops_.widen_bf16(full->data(), base16_->data(), table_.total);
  params_ = full;
  ops_.keep_compute_copy(params_);
  base16_.reset();
  stage_.release();
  stage_norm_.release();
  stage_head_.release();
  staged_layer_ = -1;
}

template <typename T>
void Model<T>::init_random(uint64_t seed, double std) {
  for (size_t e = 0; e < table_.entries.size(); e++) {
    const ParamEntry& p = table_.entries[e];
    const bool is_norm = p.name.find("norm.weight") != std::string::npos;
    if (base16_) {
      // The same draws as the fp32 base, rounded to bf16 as they are written (on the host, then uploaded to a
      // backend with memory of its own).
      std::vector<uint16_t> staged16;
      if (!ops_.host_memory()) staged16.resize(p.size);
      uint16_t* w = ops_.host_memory() ? base16_->data() + p.offset : staged16.data();
      if (p.shape.size() < 2) std::fill(w, w + p.size, float_to_bf16(is_norm ? 1.0f : 0.0f));
      else fill_normal_with(p.size, std, seed, e, [w](size_t i, float x) { w[i] = float_to_bf16(x); });
      if (!ops_.host_memory()) ops_.upload_bf16(base16_->data() + p.offset, w, p.size);
      continue;
    }
    // Drawn on the host; a backend with memory of its own gets each tensor uploaded.
    std::vector<T> staged;
    if (!ops_.host_memory()) staged.resize(p.size);
    T* w = ops_.host_memory() ? params_->data() + p.offset : staged.data();
    if (p.shape.size() < 2) std::fill(w, w + p.size, is_norm ? T(1) : T(0));
    else fill_normal(w, p.size, std, seed, e);
    if (!ops_.host_memory()) ops_.upload(params_->data() + p.offset, w, p.size);
  }
  if (base16_) stage_bf16_base();
  if (m_) ops_.fill(m_->data(), m_->size(), T(0));
  if (v_) ops_.fill(v_->data(), v_->size(), T(0));
  step_ = 0;
}

template <typename T>
void Model<T>::zero_grad() {
  if (grads_) ops_.fill(grads_->data(), grads_->size(), T(0));
  else ensure_training_state();
}

template <typename T>
void Model<T>::stage_bf16_base() {
  size_t widest = 0;
  for (int k = 0; k < cfg_.num_layers; k++) {
    const auto [begin, end] = layer_range(table_, k);
    widest = std::max(widest, end - begin);
  }
  stage_.allocate(widest, ops_);
  stage_norm_.allocate(cfg_.hidden_size, ops_);
  ops_.widen_bf16(stage_norm_.data(), base16_->data() + table_.final_norm, (size_t)cfg_.hidden_size);
  stage_head_.allocate((size_t)std::min(kHeadTile, cfg_.vocab_size) * cfg_.hidden_size, ops_);
  staged_layer_ = -1;
}

template <typename T>
void Model<T>::enable_lora(const LoraConfig& l) {
  if (lora_) fail("enable_lora", "LoRA is already on");
  if (base16_ && !l.base_bf16) fail("enable_lora", "the base was created in bf16: LoRA on it needs baseBf16");
  auto table = std::make_unique<LoraTable>(cfg_, l);
  auto weights = ops_.zeros(table->total);
  std::vector<T> staged;  // a backend with memory of its own gets A uploaded
  if (!ops_.host_memory()) staged.resize(table->total);
  T* host = ops_.host_memory() ? weights->data() : staged.data();
  // PEFT's init: A ~ kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)); B = 0.
  for (size_t e = 0; e < table->entries.size(); e++) {
    const ParamEntry& p = table->entries[e];
    if (p.name.find(".lora_A.") == std::string::npos) continue;
    const double bound = 1.0 / std::sqrt((double)p.shape[1]);
    T* w = host + p.offset;
    for (size_t i = 0; i < p.size; i++) w[i] = (T)((2 * uniform01(l.seed, 1000 + e, i) - 1) * bound);
  }
  if (!ops_.host_memory()) ops_.upload(weights->data(), host, table->total);
  lora_table_ = std::move(table);
  lora_cfg_ = l;
  lora_ = weights;
  ops_.keep_compute_copy(lora_);
  // The base's gradients and moments go before the base is rounded, so a hybrid job's switch never holds
  // them beside both copies of the base (views held elsewhere keep their memory until they are dropped);
  // the adapters' come with their first training use.
  grads_.reset();
  m_.reset();
  v_.reset();
  if (l.base_bf16) round_base_to_bf16();
  shard_.clear();  // the trainable buffer changed: a ZeRO-1 shard is set again over the adapters
  if (l.base_bf16) stage_bf16_base();
  step_ = 0;
  acts_.clear();  // activations now carry the adapters' buffers
  last_ = nullptr;
}

template <typename T>
void Model<T>::round_base_to_bf16() {
  if (base16_) return;
  auto b16 = ops_.bf16_zeros(table_.total);
  ops_.round_to_bf16(b16->data(), params_->data(), table_.total);
  base16_ = b16;
  params_.reset();  // views held elsewhere keep the fp32 copy until they are dropped
  stage_bf16_base();
}

template <typename T>
void Model<T>::merge_lora() {
  if (!lora_) fail("merge_lora", "LoRA is not on");
  if (base16_) widen_base_to_fp32();
  const T scale = (T)lora_cfg_.scale();
  for (int l = 0; l < cfg_.num_layers; l++) {
    const LayerOffsets& o = table_.layers[l];
    const size_t weight[kNumTargets] = {o.wq, o.wk, o.wv, o.wo, o.wg, o.wu, o.wd};
    for (int t = 0; t < kNumTargets; t++) {
      if (!lora_table_->targeted[t]) continue;
      const auto [in, out] = LoraTable::shape(cfg_, t);
      const LoraLayer& ll = lora_table_->layers[l];
      // W[out, in] += scale * B[out, r] A[r, in]
      ops_.gemm(false, false, out, in, lora_cfg_.rank, scale, lora_->data() + ll.b[t], lora_cfg_.rank,
                lora_->data() + ll.a[t], in, T(1), param(weight[t]), in);
    }
  }
}

template <typename T>
std::vector<std::pair<size_t, size_t>> Model<T>::grad_bucket_ranges() const {
  std::vector<std::pair<size_t, size_t>> r;
  if (lora_) {
    // Adapters are laid out layer by layer: each layer's range is final once its backward is done.
    for (int l = cfg_.num_layers - 1; l >= 0; l--) {
      const LoraLayer& ll = lora_table_->layers[l];
      r.push_back({ll.begin, ll.end - ll.begin});
    }
    return r;
  }
  // Head and final norm first, then layers from last to first, then the embedding (the tied head's too).
  r.push_back({table_.final_norm, table_.total - table_.final_norm});
  for (int l = cfg_.num_layers - 1; l >= 0; l--) {
    const size_t end = l + 1 < cfg_.num_layers ? table_.layers[l + 1].ln1 : table_.final_norm;
    r.push_back({table_.layers[l].ln1, end - table_.layers[l].ln1});
  }
  r.push_back({0, table_.layers[0].ln1});
  return r;
}

template <typename T>
Activations<T>& Model<T>::activations_for(int B, int T_) {
  auto key = std::make_pair(B, T_);
  auto it = acts_.find(key);
  if (it == acts_.end())
    it = acts_
             .emplace(key, std::make_unique<Activations<T>>(cfg_, B, T_, lora_ ? &lora_cfg_ : nullptr,
                                                            lora_table_.get(), checkpointing_, ops_))
             .first;
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
  } catch (const Cancelled&) {
    throw;  // not a failure of the batch: the caller asked for it
  } catch (const Error& e) {
    // Name the call and the shapes around the op's own message.
    fail("forward_backward", "batch [", b.rows, " rows x ", b.seq_len, " tokens], model (", cfg_.describe(),
         "): ", e.what());
  }
}

template <typename T>
StepResult Model<T>::forward_backward_unchecked(const Batch& b, const StepOptions& opts) {
  check_batch(b);
  Activations<T>& a = activations_for(b.rows, b.seq_len);
  last_ = &a;
  if (opts.adapters_off && opts.backward) fail("forward", "adapters_off is for forward-only calls");
  struct ClearSp {
    const SequenceParallel*& sp;
    const CancelToken*& cancel;
    bool& adapters_off;
    ~ClearSp() {
      sp = nullptr;
      cancel = nullptr;
      adapters_off = false;
    }
  } clear_sp{sp_, cancel_, adapters_off_};
  cancel_ = opts.cancel;
  adapters_off_ = opts.adapters_off;
  sp_ = opts.sp && opts.sp->size > 1 ? opts.sp : nullptr;
  sp_segments_ = b.segment_ids;
  if (sp_ && b.seq_len % 2 != 0)
    fail("forward", "a sequence-parallel batch holds two chunks a row: odd length ", b.seq_len);
  if (sp_) find_segment_runs(a.runs, b.segment_ids, 2 * b.rows, b.seq_len / 2);  // runs per zigzag chunk
  else find_segment_runs(a.runs, b.segment_ids, b.rows, b.seq_len);
  // The scale needs the target count, known before the loss: count first.
  int64_t targets = 0;
  for (size_t n = 0; n < a.N; n++) targets += b.labels[n] != kIgnoreIndex;
  const double scale = opts.loss_scale != 0 ? opts.loss_scale : (targets > 0 ? 1.0 / targets : 0.0);
  if (opts.backward) ensure_training_state();
  // The batch in the backend's memory: the caller's arrays on a host backend, copies otherwise (segment ids
  // stay on the host: the runs above describe them).
  Batch db = b;
  if (!ops_.host_memory()) {
    // Checked here, where the batch is on the host, rather than read back from the device mid-step; the same
    // words as the CPU ops' own checks.
    const int V = cfg_.vocab_size;
    for (size_t n = 0; n < a.N; n++)
      if (b.input_ids[n] < 0 || b.input_ids[n] >= V)
        fail("embedding_forward", "token id ", b.input_ids[n], " at position ", n, " outside vocab [0,", V, ")");
    for (size_t n = 0; n < a.N; n++)
      if (b.labels[n] != kIgnoreIndex && (b.labels[n] < 0 || b.labels[n] >= V))
        fail("cross_entropy", "label ", b.labels[n], " at position ", n, " outside vocab [0,", V, ") and not -100");
    ops_.upload_ints(a.ids->data(), b.input_ids, a.N);
    ops_.upload_ints(a.labels->data(), b.labels, a.N);
    ops_.upload_ints(a.positions->data(), b.position_ids, a.N);
    db.input_ids = a.ids->data(), db.labels = a.labels->data(), db.position_ids = a.positions->data();
  }
  // The per-position loss weights likewise (in the labels' memory, as the backend's cross entropy reads them).
  StepOptions dopts = opts;
  if (!ops_.host_memory() && opts.label_weights) {
    if constexpr (std::is_same_v<T, float>) {
      a.label_weights.allocate(a.N, ops_);  // once per shape
      ops_.upload(a.label_weights.data(), opts.label_weights, a.N);
      dopts.label_weights = a.label_weights.data();
    } else {
      fail("forward", "label weights on the ", ops_.name(), " backend need fp32 activations");
    }
  }
  // The device keeps the loss sums until the step's work is queued: the step waits for it once, at its end.
  struct DeferLosses {
    const Backend<T>& ops;
    ~DeferLosses() { ops.defer_losses(false); }
  } defer{ops_};
  ops_.defer_losses(true);
  forward(a, db, opts.backward);
  LossSum ls = head(a, db, dopts, scale);
  if (opts.backward) backward(a, db, opts.on_grads_ready);
  const LossSum pending = ops_.pending_losses();
  ls.sum += pending.sum;
  ls.count += pending.count;
  return {ls.sum, ls.count};
}

template <typename T>
LossSum Model<T>::head(Activations<T>& a, const Batch& b, const StepOptions& opts, double scale) {
  const int N = (int)a.N, C = cfg_.hidden_size, V = cfg_.vocab_size;
  // d(lnf) goes to a.dln, where the backward starts.
  const bool trained_head = opts.backward && dlm_head();
  const int head_rows = head_chunk_rows_ >= 0 ? head_chunk_rows_ : ops_.head_chunk_rows(V);
  if (opts.keep_logits || (trained_head && (head_rows <= 0 || head_rows >= N))) {
    // All logits at once: a caller keeps them, or the trainable head's weight gradient wants one GEMM
    // over all positions rather than one pass over the (V, C) gradient per chunk.
    a.logits.allocate(a.N * V, ops_);  // once per shape
    head_logits(a.logits.data(), a.lnf.data(), N);
    T* dlogits = nullptr;
    if (opts.backward) {
      if (opts.keep_logits) a.dlogits.allocate(a.logits.size(), ops_);
      dlogits = opts.keep_logits ? a.dlogits.data() : a.logits.data();  // else consumed in place
    }
    const LossSum ls = ops_.cross_entropy_forward_backward(a.losses.data(), dlogits, a.logits.data(), b.labels, N, V,
                                                           scale, opts.label_weights);
    a.logits_kept = opts.keep_logits || !opts.backward;
    if (trained_head)
      ops_.linear_backward(a.dln.data(), dlm_head(), (T*)nullptr, dlogits, a.lnf.data(), lm_head(), N, C, V);
    else if (opts.backward) head_input_grad(a.dln.data(), dlogits, a.lnf.data(), N);
    return ls;
  }
  // In chunks of positions: only (rows, V) logits exist at a time. Each chunk's cross entropy turns its logits
  // into their gradient in place; a trained head's weight gradient accumulates chunk by chunk, and each chunk's
  // d(lnf) is written.
  const int rows = trained_head ? head_rows : kHeadChunk;
  LossSum total;
  a.chunk.allocate((size_t)rows * V, ops_);  // once per shape
  for (int c0 = 0; c0 < N; c0 += rows) {
    throw_if_cancelled(cancel_);
    const int n = std::min(rows, N - c0);
    T* z = a.chunk.data();
    const T* x = a.lnf.data() + (size_t)c0 * C;
    head_logits(z, x, n);
    const LossSum ls =
        ops_.cross_entropy_forward_backward(a.losses.data() + c0, opts.backward ? z : nullptr, z, b.labels + c0, n, V,
                                            scale, opts.label_weights ? opts.label_weights + c0 : nullptr);
    total.sum += ls.sum;
    total.count += ls.count;
    if (trained_head)
      ops_.linear_backward(a.dln.data() + (size_t)c0 * C, dlm_head(), (T*)nullptr, z, x, lm_head(), n, C, V);
    else if (opts.backward) head_input_grad(a.dln.data() + (size_t)c0 * C, z, x, n);
  }
  a.logits_kept = false;
  return total;
}

template <typename T>
const T* Model<T>::logits() const {
  return last_ && last_->logits_kept ? last_->logits.data() : nullptr;
}

template <typename T>
const T* Model<T>::token_losses() const {
  return last_ ? last_->losses.data() : nullptr;
}

// The dropout mask of layer l's target t in this step: a counter-based stream, so it needs no state between
// steps, and the backward (and a checkpointed layer's recompute) draws the forward's mask again.
template <typename T>
uint64_t Model<T>::dropout_stream(int l, int t) const {
  return ((uint64_t)step_ << 20) ^ ((uint64_t)l << 4) ^ (uint64_t)t;
}

template <typename T>
void Model<T>::project(int l, int t, T* out, const T* inp, size_t w, size_t bias, int N, const AdapterBuffers<T>& ab,
                       const std::vector<AdapterRun<T>>& adapters, const T* residual, T* scratch) {
  const auto [in, outf] = LoraTable::shape(cfg_, t);
  // The base weight over every position at once (one GEMM), then each run's low-rank product.
  if (residual) ops_.linear_forward_residual(out, residual, inp, param(w), param(bias), N, in, outf, scratch);
  else ops_.linear_forward(out, inp, param(w), param(bias), N, in, outf);
  add_adapters(l, t, out, inp, N, ab, adapters);
}

template <typename T>
void Model<T>::project_stacked(int l, const StackedTargets& g, T* const* outs, const T* inp, int N,
                               const std::array<AdapterBuffers<T>, kNumTargets>& ab,
                               const std::vector<AdapterRun<T>>& adapters) {
  int O[kMaxStacked];
  const int in = stacked_shape(g, O);
  ops_.linear_forward_stacked(outs, inp, param(g.w[0]), param(g.b[0]), O, g.parts, N, in);
  for (int j = 0; j < g.parts; j++) add_adapters(l, g.t[j], outs[j], inp, N, ab[g.t[j]], adapters);
}

// project_stacked of rmsnorm(inp) (ln and rstd written), the norm and the GEMM in one backend call.
template <typename T>
void Model<T>::norm_project_stacked(int l, const StackedTargets& g, T* const* outs, T* ln, T* rstd, const T* inp,
                                    const T* norm_w, int N, const std::array<AdapterBuffers<T>, kNumTargets>& ab,
                                    const std::vector<AdapterRun<T>>& adapters) {
  int O[kMaxStacked];
  const int in = stacked_shape(g, O);
  ops_.rmsnorm_linear_stacked(outs, ln, rstd, inp, norm_w, cfg_.rms_norm_eps, param(g.w[0]), param(g.b[0]), O, g.parts,
                              N, in);
  for (int j = 0; j < g.parts; j++) add_adapters(l, g.t[j], outs[j], ln, N, ab[g.t[j]], adapters);
}

// The rows of each part of a stacked group, and its input width; the table lays the group's weights (and
// biases) out adjacently, which the stacked ops rely on.
template <typename T>
int Model<T>::stacked_shape(const StackedTargets& g, int* O) const {
  const int in = LoraTable::shape(cfg_, g.t[0]).first;
  size_t row = 0;
  for (int j = 0; j < g.parts; j++) {
    O[j] = LoraTable::shape(cfg_, g.t[j]).second;
    if (g.w[j] != g.w[0] + row * in || (g.b[j] == kAbsent) != (g.b[0] == kAbsent) ||
        (g.b[0] != kAbsent && g.b[j] != g.b[0] + row))
      fail("model", "projection ", g.t[j], " is not stacked after the group's first in the parameter table");
    row += O[j];
  }
  return in;
}

template <typename T>
void Model<T>::add_adapters(int l, int t, T* out, const T* inp, int N, const AdapterBuffers<T>& ab,
                            const std::vector<AdapterRun<T>>& adapters) {
  const auto [in, outf] = LoraTable::shape(cfg_, t);
  for (const AdapterRun<T>& run : adapters) {
    if (!run.table->targeted[t]) continue;
    const LoraLayer& ll = run.table->layers[l];
    const int r = run.rank;
    const T* x = inp + (size_t)run.begin * in;
    if (ab.x && lora_ && lora_cfg_.dropout > 0) {  // training: the model's own adapters, one run over all
      ops_.lora_dropout_forward(ab.x, inp, (size_t)N * in, lora_cfg_.dropout, lora_cfg_.seed, dropout_stream(l, t));
      x = ab.x;
    }
    // u = x A^T (n, r);  out += scale * u B^T
    T* u = ab.u + (size_t)run.begin * r;
    ops_.gemm(false, true, run.n, r, in, T(1), x, in, run.weights + ll.a[t], in, T(0), u, r);
    ops_.gemm(false, true, run.n, outf, r, run.scale, u, r, run.weights + ll.b[t], r, T(1),
              out + (size_t)run.begin * outf, outf);
  }
}

template <typename T>
void Model<T>::project_backward(Activations<T>& a, int l, int t, T* dinp, const T* dout, const T* inp, size_t w,
                                size_t bias, int N) {
  const auto [in, outf] = LoraTable::shape(cfg_, t);
  ops_.linear_backward(dinp, grad(w), grad(bias), dout, inp, param(w), N, in, outf);
  adapter_backward(a, l, t, dinp, dout, inp, N);
}

template <typename T>
void Model<T>::project_backward_stacked(Activations<T>& a, int l, const StackedTargets& g, T* dinp,
                                        const T* const* douts, const T* inp, int N, T* scratch) {
  int O[kMaxStacked];
  const int in = stacked_shape(g, O);
  ops_.linear_backward_stacked(dinp, grad(g.w[0]), grad(g.b[0]), douts, inp, param(g.w[0]), O, g.parts, N, in, scratch);
  for (int j = 0; j < g.parts; j++) adapter_backward(a, l, g.t[j], dinp, douts[j], inp, N);
}

// The adapter's gradients and its share of dinp (added), when LoRA targets t.
template <typename T>
void Model<T>::adapter_backward(Activations<T>& a, int l, int t, T* dinp, const T* dout, const T* inp, int N) {
  const auto [in, outf] = LoraTable::shape(cfg_, t);
  if (!lora_ || !lora_table_->targeted[t]) return;
  LayerActivations<T>& la = a.kept(l);
  const LoraLayer& ll = lora_table_->layers[l];
  const int r = lora_cfg_.rank;
  const T scale = (T)lora_cfg_.scale();
  const bool dropped = !la.lora_x[t].empty();
  const T* x = dropped ? la.lora_x[t].data() : inp;
  T* du = a.lora_du.data();
  T* dA = grads_->data() + ll.a[t];
  T* dB = grads_->data() + ll.b[t];
  const T* A = lora_->data() + ll.a[t];
  const T* B = lora_->data() + ll.b[t];
  // dB += scale * dout^T u;  du = scale * dout B;  dA += du^T x
  ops_.gemm(true, false, outf, r, N, scale, dout, outf, la.lora_u[t].data(), r, T(1), dB, r);
  ops_.gemm(false, false, N, r, outf, scale, dout, outf, B, r, T(0), du, r);
  ops_.gemm(true, false, r, in, N, T(1), du, r, x, in, T(1), dA, in);
  if (!dropped) {
    ops_.gemm(false, false, N, in, r, T(1), du, r, A, in, T(1), dinp, in);  // dinp += du A
    return;
  }
  T* dx = a.lora_dx.data();
  ops_.gemm(false, false, N, in, r, T(1), du, r, A, in, T(0), dx, in);
  ops_.lora_dropout_backward(dinp, dx, (size_t)N * in, lora_cfg_.dropout, lora_cfg_.seed, dropout_stream(l, t));
}

namespace {

// Whether an adapter of the forward targets projection t.
template <typename T>
bool any_targets(const std::vector<AdapterRun<T>>& adapters, int t) {
  for (const AdapterRun<T>& run : adapters)
    if (run.table->targeted[t]) return true;
  return false;
}

}  // namespace

template <typename T>
void Model<T>::forward(Activations<T>& a, const Batch& b, bool training) {
  const ModelConfig& c = cfg_;
  const PackedRows<T> rows{&a.runs, {b.rows, b.seq_len, c.num_heads, c.num_kv_heads, c.head_dim}, &a.attn_scratch};
  auto layer = [&](int l) { return training_layer_buffers(a, b, l, training); };
  forward_positions(b.input_ids, (int)a.N, layer, a.rstdf.data(), a.lnf.data(), &rows, nullptr, own_adapters((int)a.N));
}

// Each layer keeps what its backward reads; ln, tmp and h are recomputed or consumed at once, so shared.
template <typename T>
LayerBuffers<T> Model<T>::training_layer_buffers(Activations<T>& a, const Batch& b, int l, bool training) {
  const ModelConfig& c = cfg_;
  LayerActivations<T>& la = a.kept(l);
  LayerBuffers<T> io;
  io.n = (int)a.N;
  io.positions = b.position_ids;
  io.res_in = a.layers[l].res_in.data();
  io.res_mid = la.res_mid.data();
  io.res_out = l + 1 < c.num_layers ? a.layers[l + 1].res_in.data() : a.res_out.data();
  io.rstd1 = la.rstd1.data();
  io.rstd2 = la.rstd2.data();
  io.ln = a.ln.data();
  io.tmp = a.dtmp.data();
  io.q = la.q.data();
  io.att = la.att.data();
  io.k = la.k.data();
  io.v = la.v.data();
  io.gate = la.gate.data();
  io.up = la.up.data();
  io.h = a.h.data();
  io.lse = la.lse.data();
  for (int t = 0; t < kNumTargets; t++) {
    io.adapters[t].u = la.lora_u[t].empty() ? nullptr : la.lora_u[t].data();
    if (training && !la.lora_x[t].empty()) io.adapters[t].x = la.lora_x[t].data();  // only when dropout is on
  }
  return io;
}

template <typename T>
const std::vector<AdapterRun<T>>& Model<T>::own_adapters(int n) {
  own_adapters_.clear();  // keeps its capacity: no allocation after the first call
  // adapters_off_: the frozen base alone (a preference loss's reference), for one forward.
  if (lora_ && !adapters_off_)
    own_adapters_.push_back({lora_->data(), lora_table_.get(), (T)lora_cfg_.scale(), lora_cfg_.rank, 0, n});
  return own_adapters_;
}

template <typename T>
void Model<T>::forward_positions(const int32_t* ids, int n, const std::function<LayerBuffers<T>(int)>& layer, T* rstdf,
                                 T* lnf, const PackedRows<T>* rows, const std::vector<CachedRun<T>>* caches,
                                 const std::vector<AdapterRun<T>>& adapters) {
  const ModelConfig& c = cfg_;
  const int C = c.hidden_size;
  // A bf16 base may have been written since the last forward (weights read from a file, a caller's view):
  // the staged fp32 copies are refreshed rather than trusted.
  if (base16_) stage_bf16_base();
  LayerBuffers<T> io = layer(0);
  if (base16_) ops_.embedding_forward_bf16(io.res_in, ids, base16_->data() + table_.embed, n, C, c.vocab_size);
  else ops_.embedding_forward(io.res_in, ids, param(table_.embed), n, C, c.vocab_size);
  for (int l = 0; l < c.num_layers; l++) {
    throw_if_cancelled(cancel_);
    if (l > 0) io = layer(l);
    layer_forward(l, io, rows, caches, adapters);
  }
  ops_.rmsnorm_forward(lnf, rstdf, io.res_out, param(table_.final_norm), n, C, c.rms_norm_eps);
  if (caches)
    for (const CachedRun<T>& run : *caches) run.cache->filled += run.n;
}

template <typename T>
void Model<T>::layer_forward(int l, const LayerBuffers<T>& io, const PackedRows<T>* rows,
                             const std::vector<CachedRun<T>>* caches, const std::vector<AdapterRun<T>>& adapters) {
  const ModelConfig& c = cfg_;
  const int n = io.n, C = c.hidden_size, H = c.num_heads, KVH = c.num_kv_heads, D = c.head_dim;
  const size_t Q = c.q_dim(), KV = c.kv_dim();
  const LayerOffsets& o = table_.layers[l];
  const auto& ad = io.adapters;
  stage_layer(l);
  T* const qkv[] = {io.q, io.k, io.v};
  norm_project_stacked(l, qkv_group(o), qkv, io.ln, io.rstd1, io.res_in, param(o.ln1), n, ad, adapters);
  ops_.rope_forward(io.q, io.positions, inv_freq_.data(), n, H, D);
  ops_.rope_forward(io.k, io.positions, inv_freq_.data(), n, KVH, D);
  if (caches) {
    for (const CachedRun<T>& run : *caches) {
      KvCache<T>& kv = *run.cache;
      T *k = kv.k[l]->data(), *v = kv.v[l]->data();
      ops_.copy(k + (size_t)kv.filled * KV, io.k + (size_t)run.begin * KV, (size_t)run.n * KV);
      ops_.copy(v + (size_t)kv.filled * KV, io.v + (size_t)run.begin * KV, (size_t)run.n * KV);
      ops_.cached_attention(io.att + (size_t)run.begin * Q, io.q + (size_t)run.begin * Q, k, v, kv.filled, run.n, H,
                            KVH, D);
    }
  } else if (sp_) sp_attention_forward(io.att, io.lse, io.q, io.k, io.v, *rows->runs, ring_shape(rows->shape));
  else ops_.attention_forward(io.att, io.lse, io.q, io.k, io.v, *rows->runs, rows->shape, *rows->scratch);
  project(l, kO, io.res_mid, io.att, o.wo, o.bo, n, ad[kO], adapters, io.res_in, io.tmp);  // res_in + o_proj(att)
  if (!any_targets(adapters, kGate) && !any_targets(adapters, kUp)) {  // the MLP in the backend's fewest kernels
    int O[kMaxStacked];
    stacked_shape(gate_up_group(o), O);
    ops_.mlp_forward({io.res_out, io.ln, io.rstd2, io.gate, io.up, io.h, io.res_mid, param(o.ln2), param(o.wg),
                      param(o.bg), param(o.wd), param(o.bd), c.rms_norm_eps, n, C, c.intermediate_size, io.tmp});
    add_adapters(l, kDown, io.res_out, io.h, n, ad[kDown], adapters);
    return;
  }
  T* const gate_up[] = {io.gate, io.up};
  norm_project_stacked(l, gate_up_group(o), gate_up, io.ln, io.rstd2, io.res_mid, param(o.ln2), n, ad, adapters);
  ops_.swiglu_forward(io.h, io.gate, io.up, (size_t)n * c.intermediate_size);
  project(l, kDown, io.res_out, io.h, o.wd, o.bd, n, ad[kDown], adapters, io.res_mid, io.tmp);  // res_mid + mlp
}

template <typename T>
void Model<T>::backward(Activations<T>& a, const Batch& b, const GradsReady& ready) {
  const ModelConfig& c = cfg_;
  const int N = (int)a.N, C = c.hidden_size, I = c.intermediate_size;
  const size_t NC = a.N * C;
  const AttentionShape shape{b.rows, b.seq_len, c.num_heads, c.num_kv_heads, c.head_dim};
  T *dres = a.dres.data(), *dln = a.dln.data(), *dtmp = a.dtmp.data();
  const auto ranges = grad_bucket_ranges();
  size_t reported = 0;
  auto report = [&] {
    if (ready) {
      // The bucket is handed over by the host: the device work issued so far must not be held back meanwhile.
      ops_.pause_capture(true);
      ready(ranges[reported].first, ranges[reported].second);
      ops_.pause_capture(false);
    }
    reported++;
  };

  // head() left d(lnf) in dln
  ops_.rmsnorm_backward(dres, grad(table_.final_norm), dln, a.res_out.data(), param(table_.final_norm), a.rstdf.data(),
                        N, C);
  if (!lora_) report();  // with a tied head its gradient lives in the embedding, which is reported last
  for (int l = c.num_layers - 1; l >= 0; l--) {
    throw_if_cancelled(cancel_);
    const LayerOffsets& o = table_.layers[l];
    if (a.checkpointed) recompute_layer(a, b, l);
    LayerActivations<T>& la = a.kept(l);
    const T* res_in = a.layers[l].res_in.data();
    stage_layer(l);
    // dres holds d(layer output). MLP branch: out = res_mid + down(silu(gate(ln2)) * up(ln2)).
    // ln2 and h are recomputed from what the forward kept (elementwise, cheap next to the GEMMs).
    ops_.rmsnorm_forward(a.ln.data(), la.rstd2.data(), la.res_mid.data(), param(o.ln2), N, C, c.rms_norm_eps);
    ops_.swiglu_down_backward(a.dgate.data(), grad(o.wd), grad(o.bd), a.h.data(), dres, la.gate.data(), la.up.data(),
                              param(o.wd), N, C, I);  // d(h), into dgate
    adapter_backward(a, l, kDown, a.dgate.data(), dres, a.h.data(), N);
    if (lora_ && (lora_table_->targeted[kGate] || lora_table_->targeted[kUp])) {
      ops_.swiglu_backward(a.dgate.data(), a.dup.data(), a.dgate.data(), la.gate.data(), la.up.data(), a.N * I);
      const T* const dgate_up[] = {a.dgate.data(), a.dup.data()};
      project_backward_stacked(a, l, gate_up_group(o), dln, dgate_up, a.ln.data(), N, dtmp);
    } else {  // SwiGLU's gradient joined with the stacked gate/up backward
      int O[kMaxStacked];
      stacked_shape(gate_up_group(o), O);
      ops_.swiglu_stacked_backward(dln, grad(o.wg), grad(o.bg), a.dgate.data(), a.dup.data(), a.dgate.data(),
                                   la.gate.data(), la.up.data(), a.ln.data(), param(o.wg), N, C, I, dtmp);
    }
    ops_.rmsnorm_backward(dtmp, grad(o.ln2), dln, la.res_mid.data(), param(o.ln2), la.rstd2.data(), N, C);
    ops_.add_inplace(dres, dtmp, NC);  // now d(res_mid)
    // Attention branch: res_mid = res_in + o_proj(attention(rope(q), rope(k), v))
    project_backward(a, l, kO, a.datt.data(), dres, la.att.data(), o.wo, o.bo, N);
    if (sp_)
      sp_attention_backward(a.dq.data(), a.dk.data(), a.dv.data(), a.datt.data(), la.q.data(), la.k.data(), la.v.data(),
                            la.att.data(), la.lse.data(), a.runs, ring_shape(shape));
    else
      ops_.attention_backward(a.dq.data(), a.dk.data(), a.dv.data(), a.datt.data(), la.q.data(), la.k.data(),
                              la.v.data(), la.att.data(), la.lse.data(), a.runs, shape, a.attn_scratch);
    ops_.rope_backward(a.dq.data(), b.position_ids, inv_freq_.data(), N, c.num_heads, c.head_dim);
    ops_.rope_backward(a.dk.data(), b.position_ids, inv_freq_.data(), N, c.num_kv_heads, c.head_dim);
    ops_.rmsnorm_forward(a.ln.data(), la.rstd1.data(), res_in, param(o.ln1), N, C, c.rms_norm_eps);  // ln1 again
    const T* const dqkv[] = {a.dq.data(), a.dk.data(), a.dv.data()};
    project_backward_stacked(a, l, qkv_group(o), dln, dqkv, a.ln.data(), N, dtmp);
    ops_.rmsnorm_backward(dtmp, grad(o.ln1), dln, res_in, param(o.ln1), la.rstd1.data(), N, C);
    report();                                               // the layer's parameters (or adapters) are final
    if (l > 0 || !lora_) ops_.add_inplace(dres, dtmp, NC);  // now d(res_in); the frozen embedding needs none
  }
  if (lora_) return;
  ops_.embedding_backward(grad(table_.embed), dres, b.input_ids, N, C);
  report();
}

template <typename T>
AdamWResult Model<T>::adamw_step(const AdamWOptions& o) {
  ensure_training_state();
  T* weights = lora_ ? lora_->data() : params_->data();
  return adamw_step_on(ops_, {weights, grads_->data(), m_->data(), v_->data()}, o);
}

template <typename T>
AdamWResult Model<T>::adamw_step_on(const Backend<T>& ops, const OptimizerBuffers& b, const AdamWOptions& o) {
  if (!(o.lr >= 0) || !(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1) || !(o.eps > 0))
    fail("adamw_step", "invalid options: lr ", o.lr, ", betas (", o.beta1, ", ", o.beta2, "), eps ", o.eps);
  if (!shard_.empty() && o.grad_norm < 0)
    fail("adamw_step", "the moments are sharded (ZeRO-1): the global gradient norm must be given");
  const double norm = o.grad_norm >= 0 ? o.grad_norm : std::sqrt(ops.sum_of_squares(b.grads, num_trainable()));
  if (!std::isfinite(norm)) fail("adamw_step", "gradient norm is ", norm, ": refusing to update the weights");
  // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.
  double clip = 1;
  if (o.max_grad_norm > 0) clip = std::min(1.0, o.max_grad_norm / (norm + 1e-6));
  step_ += 1;
  AdamWStep s{o.lr,
              o.beta1,
              o.beta2,
              o.eps,
              o.weight_decay,
              1 - std::pow(o.beta1, (double)step_),
              1 - std::pow(o.beta2, (double)step_),
              clip};
  if (!shard_.empty()) {
    adamw_update_shard(ops, b, s);
    return {norm, step_};
  }
  for (const ParamEntry& p : trainable_entries())
    ops.adamw_update(b.weights + p.offset, b.grads + p.offset, b.m + p.offset, b.v + p.offset, p.size, s, p.decay);
  return {norm, step_};
}

template class Model<float>;
template class Model<double>;

}  // namespace rt
