#pragma once
// A decoder-only transformer as Hugging Face's LlamaForCausalLM / Qwen2ForCausalLM define it, with its
// backward and AdamW, on the CPU. Templated on the scalar: float for training, double for gradient checks.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>
#include "activations.h"
#include "backend.h"
#include "backend_array.h"
#include "buffer.h"
#include "cancel_token.h"
#include "config.h"
#include "decode_buffers.h"
#include "kv_cache.h"
#include "layer_buffers.h"
#include "lora.h"
#include "ops/adamw.h"
#include "ops/cross_entropy.h"
#include "param_table.h"
#include "ring_attention.h"

namespace rt {

struct Batch {
  int rows = 0, seq_len = 0;
  const int32_t* input_ids = nullptr;     // (rows, seq_len)
  const int32_t* labels = nullptr;        // (rows, seq_len) targets already shifted; -100 ignored
  const int32_t* position_ids = nullptr;  // (rows, seq_len) restart per segment
  const int32_t* segment_ids = nullptr;   // (rows, seq_len) contiguous runs
};

// Called during the backward each time a contiguous range of the gradient buffer is final (a bucket):
// the head and final norm first, then each layer from the last to the first, then the embedding. The
// caller may all-reduce a bucket while the backward goes on: later work never touches a reported range.
using GradsReady = std::function<void(size_t offset, size_t size)>;

struct StepOptions {
  bool backward = true;
  bool keep_logits = false;
  double loss_scale = 0;      // gradient of loss_scale * loss_sum; 0 = 1/targets (the local mean)
  GradsReady on_grads_ready;  // optional
  // Sequence parallelism: the batch holds this rank's zigzag chunks of each row (rows, 2 * chunk), with the
  // rows' own position and segment ids; attention runs round the group's ring. Null or size 1: plain rows.
  const SequenceParallel* sp = nullptr;
  // Optional: checked between layers; once set, the call throws Cancelled (see cancel_token.h).
  const CancelToken* cancel = nullptr;
  // Optional (rows * seq_len): each position's loss weighs this much in the gradient (a preference loss's
  // derivative by the sequence log-probability the position belongs to); null: every target weighs 1.
  const float* label_weights = nullptr;
  // The frozen base alone, LoRA adapters skipped: a preference loss's reference model without a second copy.
  // Forward only.
  bool adapters_off = false;
};

struct StepResult {
  double loss_sum = 0;
  int64_t targets = 0;
};

struct AdamWOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  double max_grad_norm = 0;  // <= 0: no clipping
  // >= 0: the global gradient norm, computed by the caller over every rank's shard (ZeRO-1); < 0: this
  // model's whole gradient buffer gives it.
  double grad_norm = -1;
};

struct AdamWResult {
  double grad_norm = 0;  // before clipping
  int64_t step = 0;
};

// Bytes held, by kind. params counts the base weights (base_params, in their storage precision) and the
// adapters (adapter_params); optimizer counts both AdamW moments; scratch is the fp32 staging of a frozen
// bf16 base (one layer's weights and a tile of the head), counted under activations.
struct MemoryReport {
  size_t params = 0, grads = 0, optimizer = 0, activations = 0;
  size_t base_params = 0, adapter_params = 0, scratch = 0;
  // Activation checkpointing: the activation bytes it avoids keeping (0 when off). The optimizer state
  // holds only this rank's shard of the moments under ZeRO-1; optimizer_unsharded is what all of it takes.
  size_t activations_saved = 0, optimizer_unsharded = 0;
  int base_bytes_per_param = 4;
  size_t total() const { return params + grads + optimizer + activations; }
};

struct GenerateOptions {
  std::vector<int32_t> prompt;
  int max_new = 16;
  double temperature = 0;  // 0: greedy
  double top_p = 1;
  uint64_t seed = 0;
  std::vector<int32_t> eos;
};

constexpr int kHeadTile = 4096;  // vocabulary rows of a bf16 head widened at a time

template <typename T>
class Model {
 public:
  // The layer sequence below is written once over the backend's ops; the CPU backend is the default. The
  // backend is held by reference and must outlive the model (cpu_backend() is a static).
  // base_bf16: the base is created frozen in bf16 (a LoRA job's), never held in fp32 first.
  explicit Model(const ModelConfig& cfg, const Backend<T>& backend = cpu_backend<T>(), bool base_bf16 = false);
  // A model over `base`'s weights (the same buffers, not a copy) with state of its own: a server's decoder
  // runs the layers while the base model may generate or evaluate on another thread.
  struct SharedWeights {};
  Model(const Model& base, SharedWeights);
  // Points this model at `base`'s current weights again (after the base rounded itself to bf16, say).
  void share_weights_of(const Model& base);

  const ModelConfig& config() const { return cfg_; }
  const Backend<T>& backend() const { return ops_; }
  const ParamTable& table() const { return table_; }
  size_t num_params() const { return table_.total; }
  // The fp32 base weights; null while the frozen base is held in bf16 (base_bf16() then).
  T* params() { return params_ ? params_->data() : nullptr; }
  bool base_is_bf16() const { return (bool)base16_; }
  const uint16_t* base_bf16() const { return base16_ ? base16_->data() : nullptr; }
  Buffer<uint16_t> base_bf16_buffer() const { return base16_; }
  // The trainable parameters' gradients and AdamW moments: the base parameters in full training, the
  // adapters once LoRA is on (then trainable_entries() names them and their offsets).
  // Allocated on first use (a backward, an optimizer step, or a caller asking for them): a model that only
  // evaluates or generates never holds them.
  T* grads() { return grads_buffer()->data(); }
  T* adam_m() { return m_buffer()->data(); }
  T* adam_v() { return v_buffer()->data(); }
  size_t num_trainable() const { return lora_ ? lora_table_->total : table_.total; }
  bool has_training_state() const { return (bool)grads_; }
  const std::vector<ParamEntry>& trainable_entries() const { return lora_ ? lora_table_->entries : table_.entries; }
  // Shared ownership of the buffers, for views that must outlive a switch to LoRA (the binding's).
  Buffer<T> params_buffer() const { return params_; }
  Buffer<T> grads_buffer() {
    ensure_training_state();
    return grads_;
  }
  Buffer<T> m_buffer() {
    ensure_training_state();
    return m_;
  }
  Buffer<T> v_buffer() {
    ensure_training_state();
    return v_;
  }
  Buffer<T> lora_buffer() const { return lora_; }
  int64_t step() const { return step_; }
  void set_step(int64_t s) { step_ = s; }
  MemoryReport memory() const;

  // Activation checkpointing: the forward keeps only each layer's input, and the backward recomputes the
  // layer's forward before its backward (recompute.cpp). Same losses and gradients, about one layer's
  // activations instead of all of them, for one more forward's compute.
  void set_activation_checkpointing(bool on);

  // ZeRO-1 (optimizer_shard.cpp): this rank's AdamW moments cover only these [offset, size) ranges of the
  // trainable buffer, packed in order; empty means all of it. Setting it reallocates the moments at zero;
  // adamw_step then updates only these ranges of the weights, with the global norm given in its options.
  void set_optimizer_shard(const std::vector<std::pair<size_t, size_t>>& ranges);
  const std::vector<std::pair<size_t, size_t>>& optimizer_shard() const { return shard_; }
  size_t optimizer_elements() const;
  // Sum of squares of the gradient over the shard (over everything when unsharded), in double.
  double grad_sum_of_squares() const;
  bool activation_checkpointing() const { return checkpointing_; }

  // LoRA: frees the base gradients and moments, adds adapters (A random, B = 0), restarts the optimizer;
  // with cfg.base_bf16 the base is rounded to bf16 and its fp32 copy freed.
  void enable_lora(const LoraConfig& cfg);
  // Rounds the fp32 base to bf16 and frees the fp32 copy (views held elsewhere keep it until dropped):
  // a frozen base for serving, or LoRA's base_bf16. Nothing to do when the base is bf16 already.
  void round_base_to_bf16();
  bool lora_enabled() const { return (bool)lora_; }
  const LoraConfig& lora_config() const { return lora_cfg_; }
  const LoraTable& lora_table() const { return *lora_table_; }
  T* lora_params() { return lora_->data(); }
  size_t num_lora_params() const { return lora_ ? lora_->size() : 0; }
  // W += scale * B A for every adapter (a bf16 base is widened back to fp32 first).
  void merge_lora();

  // Hugging Face's init: normal(0, std) for matrices and embeddings, 1 for norm weights, 0 for biases.
  void init_random(uint64_t seed, double std);
  void zero_grad();

  // Forward, and backward when opts.backward: parameter gradients are ADDED to grads().
  StepResult forward_backward(const Batch& batch, const StepOptions& opts);
  // Of the last forward_backward: (rows, seq_len, vocab) logits when keep_logits; per-position losses.
  const T* logits() const;
  const T* token_losses() const;
  size_t last_positions() const { return last_ ? last_->N : 0; }
  // The ranges forward_backward reports to on_grads_ready, in order: they tile the gradient buffer.
  std::vector<std::pair<size_t, size_t>> grad_bucket_ranges() const;
  int grad_buckets() const { return (int)grad_bucket_ranges().size(); }

  AdamWResult adamw_step(const AdamWOptions& opts);
  // The trainable weights, their gradients and both moments, as one optimizer step reads and writes them.
  struct OptimizerBuffers {
    T* weights;
    T* grads;
    T* m;
    T* v;
  };
  // adamw_step on copies of those buffers in `ops`'s memory, with its arithmetic: a model on a device in a ring
  // with CPU ranks updates host copies with the CPU ops, as they do, so every rank keeps the same bits (the
  // weight checksum compares them exactly); the caller uploads the result.
  AdamWResult adamw_step_on(const Backend<T>& ops, const OptimizerBuffers& b, const AdamWOptions& opts);

  // Generation with a KV cache (generate.cpp). step_logits, when given, receives each step's logits.
  std::vector<int32_t> generate(const GenerateOptions& opts, std::vector<std::vector<T>>* step_logits = nullptr);

  // The forward of n new positions of one or more sequences over their KV caches (generation, batched
  // serving): buf.ids and buf.pos hold the positions' tokens and RoPE positions; each cached run's positions
  // extend its cache. adapters: the low-rank products per run of positions, or null for the model's own
  // adapters (if any). Leaves the final norm of every position in buf.lnf.
  void forward_cached(int n, DecodeBuffers<T>& buf, const std::vector<CachedRun<T>>& caches,
                      const std::vector<AdapterRun<T>>* adapters);
  // Positions per chunk of a trained LM head whose logits nobody keeps (0: all at once; -1, the default: the
  // backend's head_chunk_rows). Tests use it to make chunks of a small batch.
  void set_head_chunk_rows(int rows) { head_chunk_rows_ = rows; }
  // The LM head: logits z (n, V) = x (n, C) W^T, tile by tile of the vocabulary with a bf16 base.
  void head_logits(T* z, const T* x, int n);

 private:
  void ensure_training_state();
  // Fails naming `what` when the backend's memory is not the host's (what is computed there reads it).
  void require_host_memory(const char* what) const;
  Activations<T>& activations_for(int B, int T_);
  StepResult forward_backward_unchecked(const Batch& batch, const StepOptions& opts);
  T* at(Storage<T>& buf, size_t off) { return off == kAbsent ? nullptr : buf.data() + off; }
  T* param(size_t off) {
    if (off == kAbsent) return nullptr;
    return base16_ ? staged(off) : params_->data() + off;
  }
  // bf16 base: the fp32 staging of a parameter of the staged layer or the final norm.
  T* staged(size_t off);
  void stage_layer(int l);
  void widen_base_to_fp32();
  // The LM head's dx (n, C) = dz W (written), tile by tile of the vocabulary with a bf16 base.
  void head_input_grad(T* dx, const T* dz, const T* x, int n);
  const T* head_tile(int v0, int rows);
  // A base parameter's gradient, or null when the base is frozen (LoRA): its backward is then skipped.
  T* grad(size_t off) { return lora_ ? nullptr : at(*grads_, off); }
  const T* lm_head() { return params_->data() + (cfg_.tie_word_embeddings ? table_.embed : table_.lm_head); }
  T* dlm_head() { return grad(cfg_.tie_word_embeddings ? table_.embed : table_.lm_head); }
  void forward(Activations<T>& a, const Batch& b, bool training);
  // Where layer l of the training forward reads and writes: its kept activations (or the recompute slot).
  LayerBuffers<T> training_layer_buffers(Activations<T>& a, const Batch& b, int l, bool training);
  // Activation checkpointing: refills the recompute slot with layer l's forward from its kept input.
  void recompute_layer(Activations<T>& a, const Batch& b, int l);
  // The model's forward over n positions, written once for training, generation and serving: the
  // embedding of ids, every layer (layer(l) gives layer l's buffers; each layer's res_out is the next one's
  // res_in), the final norm into lnf. Attention is over packed rows (rows) or over KV caches (caches).
  void forward_positions(const int32_t* ids, int n, const std::function<LayerBuffers<T>(int)>& layer, T* rstdf, T* lnf,
                         const PackedRows<T>* rows, const std::vector<CachedRun<T>>* caches,
                         const std::vector<AdapterRun<T>>& adapters);
  // One decoder layer: ln1, q/k/v, RoPE, attention, o_proj, residual, ln2, SwiGLU MLP, residual. With
  // caches, each run's new keys and values are appended to its cache and its queries attend to every cached
  // position up to their own.
  void layer_forward(int l, const LayerBuffers<T>& io, const PackedRows<T>* rows,
                     const std::vector<CachedRun<T>>* caches, const std::vector<AdapterRun<T>>& adapters);
  // The model's own adapters as one run over n positions (none without LoRA).
  const std::vector<AdapterRun<T>>& own_adapters(int n);
  // The LM head and the loss: all logits at once, or in chunks when nobody needs them all.
  LossSum head(Activations<T>& a, const Batch& b, const StepOptions& opts, double scale);
  void backward(Activations<T>& a, const Batch& b, const GradsReady& ready);
  // A linear layer of layer l with each adapter run's product when its adapter targets t (dropout when ab
  // has its buffers). With residual: out = residual + the layer's output (scratch (N, out) for a backend that
  // adds after the GEMM).
  void project(int l, int t, T* out, const T* inp, size_t w, size_t bias, int N, const AdapterBuffers<T>& ab,
               const std::vector<AdapterRun<T>>& adapters, const T* residual = nullptr, T* scratch = nullptr);
  // Projections of one input whose weights the table stacks (q, k, v; gate, up): the base in one backend op,
  // then each targeted adapter.
  static constexpr int kMaxStacked = 3;
  struct StackedTargets {
    int parts;
    int t[kMaxStacked];
    size_t w[kMaxStacked], b[kMaxStacked];
  };
  static StackedTargets qkv_group(const LayerOffsets& o) {
    return {3, {kQ, kK, kV}, {o.wq, o.wk, o.wv}, {o.bq, o.bk, o.bv}};
  }
  static StackedTargets gate_up_group(const LayerOffsets& o) { return {2, {kGate, kUp}, {o.wg, o.wu}, {o.bg, o.bu}}; }
  int stacked_shape(const StackedTargets& g, int* O) const;
  void norm_project_stacked(int l, const StackedTargets& g, T* const* outs, T* ln, T* rstd, const T* inp,
                            const T* norm_w, int N, const std::array<AdapterBuffers<T>, kNumTargets>& ab,
                            const std::vector<AdapterRun<T>>& adapters);
  void project_stacked(int l, const StackedTargets& g, T* const* outs, const T* inp, int N,
                       const std::array<AdapterBuffers<T>, kNumTargets>& ab,
                       const std::vector<AdapterRun<T>>& adapters);
  void add_adapters(int l, int t, T* out, const T* inp, int N, const AdapterBuffers<T>& ab,
                    const std::vector<AdapterRun<T>>& adapters);
  uint64_t dropout_stream(int l, int t) const;
  void project_backward(Activations<T>& a, int l, int t, T* dinp, const T* dout, const T* inp, size_t w, size_t bias,
                        int N);
  void project_backward_stacked(Activations<T>& a, int l, const StackedTargets& g, T* dinp, const T* const* douts,
                                const T* inp, int N, T* scratch);
  void adapter_backward(Activations<T>& a, int l, int t, T* dinp, const T* dout, const T* inp, int N);
  int head_chunk_rows_ = -1;  // set_head_chunk_rows; -1: the backend's choice

  ModelConfig cfg_;
  ParamTable table_;
  std::vector<double> inv_freq_;  // (D/2) RoPE frequencies
  const Backend<T>& ops_;         // every op of the layer sequence goes through it
  Buffer<T> params_, grads_, m_, v_;
  int64_t step_ = 0;
  bool checkpointing_ = false;
  std::vector<std::pair<size_t, size_t>> shard_;  // ZeRO-1 ranges of the trainable buffer; empty = all
  void adamw_update_shard(const Backend<T>& ops, const OptimizerBuffers& b, const AdamWStep& s);
  std::unique_ptr<LoraTable> lora_table_;
  LoraConfig lora_cfg_;
  Buffer<T> lora_;                           // adapter weights, null in full training
  std::vector<AdapterRun<T>> own_adapters_;  // lora_ as one run (own_adapters())
  Buffer<uint16_t> base16_;                  // the frozen base in bf16 (params_ then null)
  BackendArray<T> stage_;                    // (largest layer) fp32 weights of staged_layer_
  BackendArray<T> stage_norm_;               // (C) the final norm's weight in fp32
  BackendArray<T> stage_head_;               // (kHeadTile, C) a tile of the LM head in fp32
  int staged_layer_ = -1;
  void stage_bf16_base();  // sizes the fp32 staging buffers of a bf16 base and refreshes the final norm
  std::map<std::pair<int, int>, std::unique_ptr<Activations<T>>> acts_;
  Activations<T>* last_ = nullptr;
  const SequenceParallel* sp_ = nullptr;  // set for the duration of a sequence-parallel forward_backward
  const int32_t* sp_segments_ = nullptr;  // its batch's segment ids
  const CancelToken* cancel_ = nullptr;   // set for the duration of a forward_backward that may be cancelled
  bool adapters_off_ = false;             // set for the duration of a forward_backward without the adapters
  RingScratch<T> ring_;
  // Sequence-parallel attention (ring_attention_staged.cpp): the ring's blocks are computed by the host's ring
  // attention; a backend with memory of its own stages the layer's q, k, v (and the backward's inputs) through
  // these host buffers, sized once per shape.
  struct RingHostStage {
    std::vector<T> q, k, v, out, lse, dout, dq, dk, dv;
  } ring_host_;
  void sp_attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const std::vector<SegmentRun>& runs,
                            const RingShape& s);
  void sp_attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                             const T* lse, const std::vector<SegmentRun>& runs, const RingShape& s);
};

extern template class Model<float>;
extern template class Model<double>;

}  // namespace rt
