#pragma once
// The op set the model is written over, once for every backend (the layer sequence lives in model.cpp and
// calls only these). Signatures follow the ops in ops/: outputs, then inputs, then sizes; parameter grads
// accumulate (+=), activation grads are written (=). The CPU backend (cpu_backend.h) is the reference every
// other backend is tested against, and the only one templated on double, for the finite-difference checks.
// Pointers are the backend's memory: its zeros() places the model's flat buffers.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>
#include "buffer.h"
#include "ops/adamw.h"
#include "ops/attention.h"
#include "ops/cross_entropy.h"

namespace rt {

struct RingShape;
struct SequenceParallel;

// How gradient buckets of a device backend reach the host's all-reduce while the backward goes on, and how the
// sums come back. send() is called on the compute thread as a bucket becomes final: it records an event on the
// compute stream and queues the copy to pinned host memory on a copy stream behind it, then returns without
// waiting; landed() runs on the staging's own thread once the bytes are in host memory, in the order of the
// sends. drain() waits for every landed() of the step (and rethrows the first failure); it must be called
// once per step, after the last send. receive() queues the copy of host sums back onto the compute stream,
// behind the rest of the step and before whatever is issued next (AdamW), without waiting either.
template <typename T>
class GradStaging {
 public:
  virtual ~GradStaging() = default;
  virtual void send(T* host, const T* device, size_t n, std::function<void()> landed) = 0;
  virtual void drain() = 0;
  virtual void receive(T* device, const T* host, size_t n) = 0;
};

// The MLP half of a decoder layer, for a backend that runs it in fewer kernels (Backend::mlp_forward):
//   ln = rmsnorm(residual) (rstd kept), [gate | up] = ln W_gu^T + b_gu, h = silu(gate) * up,
//   out = residual + h W_down^T + b_down.
// W_gu (2F, C) holds gate's rows then up's (b_gu likewise, null: none); W_down (C, F). Every pointer written
// holds its value afterwards (the backward reads gate and up, LoRA on down_proj reads h).
template <typename T>
struct MlpForward {
  T *out, *ln, *rstd, *gate, *up, *h;
  const T *residual, *norm_w, *w_gu, *b_gu, *w_down, *b_down;
  double eps;
  int N, C, F;
  T* scratch;  // (N, C): the default's product before the residual joins it
};

template <typename T>
class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // Memory. n zeros in the backend's memory (parameters, gradients, moments, activations, KV caches); ids,
  // positions and labels likewise. Copies within the backend's memory, and across the seam with the host
  // (loading weights, saving checkpoints, reading logits and losses back); a host-memory backend's
  // buffers may also be read and written directly.
  virtual Buffer<T> zeros(size_t n) const = 0;
  virtual Buffer<int32_t> int_zeros(size_t n) const = 0;
  virtual bool host_memory() const = 0;
  virtual void fill(T* p, size_t n, T value) const = 0;
  virtual void copy(T* dst, const T* src, size_t n) const = 0;
  virtual void upload(T* dst, const T* host, size_t n) const = 0;
  virtual void download(T* host, const T* src, size_t n) const = 0;
  virtual void upload_ints(int32_t* dst, const int32_t* host, size_t n) const = 0;

  // A frozen base held in bf16 (the bits as uint16_t) in the backend's memory: LoRA's base_bf16 and a
  // serving base. It is widened to T a layer at a time right before its GEMMs; rounding is to nearest even
  // (a NaN stays a NaN), the same bits on every backend.
  virtual Buffer<uint16_t> bf16_zeros(size_t n) const = 0;
  virtual void upload_bf16(uint16_t* dst, const uint16_t* host, size_t n) const = 0;
  virtual void download_bf16(uint16_t* host, const uint16_t* src, size_t n) const = 0;
  virtual void widen_bf16(T* dst, const uint16_t* src, size_t n) const = 0;
  virtual void round_to_bf16(uint16_t* dst, const T* src, size_t n) const = 0;
  // embedding_forward over a bf16 table.
  virtual void embedding_forward_bf16(T* out, const int32_t* ids, const uint16_t* wte, int N, int C, int V) const = 0;

  // Row-major C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C.
  virtual void gemm(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb, T beta,
                    T* C, int ldc) const = 0;
  // out[N,O] = inp[N,I] w[O,I]^T (+ b[O]); backward: dinp written, dw and db (when not null) accumulated.
  virtual void linear_forward(T* out, const T* inp, const T* w, const T* b, int N, int I, int O) const = 0;
  virtual void linear_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w, int N, int I,
                               int O) const = 0;
  virtual void embedding_forward(T* out, const int32_t* ids, const T* wte, int N, int C, int V) const = 0;
  // Projections of one input through weights stacked in one matrix (q, k and v; gate and up): part j's W_j
  // (O[j], I) starts at row O[0] + ... + O[j-1] of w, its bias likewise in bias (null: none), and
  // outs[j] (N, O[j]) = inp W_j^T + b_j. A device backend runs one GEMM and splits its columns; this default
  // runs linear_forward per part.
  virtual void linear_forward_stacked(T* const* outs, const T* inp, const T* w, const T* bias, const int* O, int parts,
                                      int N, int I) const {
    size_t row = 0;
    for (int j = 0; j < parts; j++) {
      linear_forward(outs[j], inp, w + row * I, bias ? bias + row : nullptr, N, I, O[j]);
      row += O[j];
    }
  }
  // Its backward: dinp (N, I) = sum_j douts[j] W_j (written); dw and dbias (stacked as w and bias; null: frozen)
  // accumulate. scratch (N, I): the default's partial products, added to dinp one part at a time.
  virtual void linear_backward_stacked(T* dinp, T* dw, T* dbias, const T* const* douts, const T* inp, const T* w,
                                       const int* O, int parts, int N, int I, T* scratch) const {
    size_t row = 0;
    for (int j = 0; j < parts; j++) {
      linear_backward(j == 0 ? dinp : scratch, dw ? dw + row * I : nullptr, dbias ? dbias + row : nullptr, douts[j],
                      inp, w + row * I, N, I, O[j]);
      if (j > 0) add_inplace(dinp, scratch, (size_t)N * I);
      row += O[j];
    }
  }
  // A linear layer whose output joins the residual stream (o_proj, down_proj): out (N, O) = residual + inp W^T + b;
  // out may alias residual. A device backend adds the residual in the GEMM's epilogue; this default computes the
  // product into scratch (N, O) and adds.
  virtual void linear_forward_residual(T* out, const T* residual, const T* inp, const T* w, const T* b, int N, int I,
                                       int O, T* scratch) const {
    linear_forward(scratch, inp, w, b, N, I, O);
    add(out, residual, scratch, (size_t)N * O);
  }
  // rmsnorm, then a stacked projection of its output (the q/k/v group): ln (N, C) and rstd (N) written (LoRA
  // adapters read ln next), then linear_forward_stacked over ln. A device backend in bf16 has the norm's kernel
  // write ln's bf16 copy for the GEMM too; this default makes the two calls.
  virtual void rmsnorm_linear_stacked(T* const* outs, T* ln, T* rstd, const T* inp, const T* norm_w, double eps,
                                      const T* w, const T* bias, const int* O, int parts, int N, int C) const {
    rmsnorm_forward(ln, rstd, inp, norm_w, N, C, eps);
    linear_forward_stacked(outs, ln, w, bias, O, parts, N, C);
  }
  // The MLP half of a layer (MlpForward above), when no LoRA adapter targets gate_proj or up_proj (they add to
  // gate and up between the GEMM and SwiGLU). A device backend fuses the split of the stacked GEMM's columns
  // with SwiGLU and hands the GEMMs operands already rounded to bf16 by the kernels that produce them; this
  // default makes the separate calls.
  virtual void mlp_forward(const MlpForward<T>& m) const {
    rmsnorm_forward(m.ln, m.rstd, m.residual, m.norm_w, m.N, m.C, m.eps);
    T* const parts[] = {m.gate, m.up};
    const int O[] = {m.F, m.F};
    linear_forward_stacked(parts, m.ln, m.w_gu, m.b_gu, O, 2, m.N, m.C);
    swiglu_forward(m.h, m.gate, m.up, (size_t)m.N * m.F);
    linear_forward_residual(m.out, m.residual, m.h, m.w_down, m.b_down, m.N, m.F, m.C, m.scratch);
  }
  // down_proj's backward with SwiGLU's output recomputed first: h = silu(gate) * up (written), dh (N, F) =
  // dout W_down (written), dw_down and db_down (null: frozen) += their gradients.
  virtual void swiglu_down_backward(T* dh, T* dw_down, T* db_down, T* h, const T* dout, const T* gate, const T* up,
                                    const T* w_down, int N, int C, int F) const {
    swiglu_forward(h, gate, up, (size_t)N * F);
    linear_backward(dh, dw_down, db_down, dout, h, w_down, N, F, C);
  }
  // SwiGLU's backward joined with the stacked gate/up projection's (when no adapter targets gate or up): dinp
  // (N, C) = [dgate | dup] W_gu (written), dw_gu and db_gu (null: frozen) accumulate. dgate and dup (N, F) are
  // the default's buffers (dgate may alias dh); a device backend writes the gradients straight into the stacked
  // layout its GEMMs read and may leave them untouched.
  virtual void swiglu_stacked_backward(T* dinp, T* dw_gu, T* db_gu, T* dgate, T* dup, const T* dh, const T* gate,
                                       const T* up, const T* inp, const T* w_gu, int N, int C, int F,
                                       T* scratch) const {
    swiglu_backward(dgate, dup, dh, gate, up, (size_t)N * F);
    const T* const douts[] = {dgate, dup};
    const int O[] = {F, F};
    linear_backward_stacked(dinp, dw_gu, db_gu, douts, inp, w_gu, O, 2, N, C, scratch);
  }
  // Positions per chunk of the LM head when its weight is trained and nobody keeps the logits: each chunk's
  // weight gradient is accumulated (one more pass over it per chunk). 0: all logits at once, one GEMM for the
  // weight gradient (a host backend: memory is plenty, passes over the gradient are not cheap).
  virtual int head_chunk_rows(int /*V*/) const { return 0; }
  virtual void embedding_backward(T* dwte, const T* dout, const int32_t* ids, int N, int C) const = 0;
  virtual void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* w, int N, int C, double eps) const = 0;
  virtual void rmsnorm_backward(T* dinp, T* dw, const T* dout, const T* inp, const T* w, const T* rstd, int N,
                                int C) const = 0;
  // inv_freq (D/2) is the model's host table of RoPE frequencies, like the runs and shapes a host description.
  virtual void rope_forward(T* x, const int32_t* pos, const double* inv_freq, int N, int heads, int D) const = 0;
  virtual void rope_backward(T* dx, const int32_t* pos, const double* inv_freq, int N, int heads, int D) const = 0;
  // Causal attention within each segment run (packed rows); lse kept for the backward.
  virtual void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v,
                                 const std::vector<SegmentRun>& runs, const AttentionShape& s,
                                 AttentionScratch<T>& scratch) const = 0;
  virtual void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                                  const T* lse, const std::vector<SegmentRun>& runs, const AttentionShape& s,
                                  AttentionScratch<T>& scratch) const = 0;
  // n new queries against a KV cache holding start earlier positions (generation).
  virtual void cached_attention(T* att, const T* q, const T* k, const T* v, int start, int n, int H, int KVH,
                                int D) const = 0;
  virtual void add(T* out, const T* a, const T* b, size_t n) const = 0;
  virtual void add_inplace(T* acc, const T* x, size_t n) const = 0;
  virtual void swiglu_forward(T* h, const T* gate, const T* up, size_t n) const = 0;
  virtual void swiglu_backward(T* dgate, T* dup, const T* dh, const T* gate, const T* up, size_t n) const = 0;
  // Losses of the positions with a label, and scale * d(loss sum)/dlogits when dlogits is not null; weights
  // (nullable, N floats in the labels' memory) weigh each position's loss in that sum.
  virtual LossSum cross_entropy_forward_backward(T* losses, T* dlogits, const T* logits, const int32_t* labels, int N,
                                                 int V, double scale, const float* weights = nullptr) const = 0;
  // LoRA dropout on an adapter's input: xd = keep(i) ? x / (1 - p) : 0, keep(i) = uniform01(seed, stream, i) >= p
  // (random.h: counter-based, so the backward draws the same mask again instead of keeping it). The backward
  // adds keep(i) ? dxd / (1 - p) : 0 to dinp.
  virtual void lora_dropout_forward(T* xd, const T* x, size_t n, double p, uint64_t seed, uint64_t stream) const = 0;
  virtual void lora_dropout_backward(T* dinp, const T* dxd, size_t n, double p, uint64_t seed,
                                     uint64_t stream) const = 0;
  virtual double sum_of_squares(const T* x, size_t n) const = 0;
  // A backend whose memory is a device's may leave cross entropy's sums there until the end of a step, so that
  // a step waits for the device once: while deferring, cross_entropy_forward_backward returns {0, 0} and adds to
  // pending sums; pending_losses() reads them back (reporting a bad token id or label the step's ops found) and
  // clears them. A host backend returns its sums at once and has nothing pending.
  virtual void defer_losses(bool) const {}
  virtual LossSum pending_losses() const { return {}; }
  virtual void adamw_update(T* p, const T* g, T* m, T* v, size_t n, const AdamWStep& s, bool decay) const = 0;

  // A device backend's gradient staging (above) and the pinned host memory its copies need to run
  // asynchronously; a host-memory backend has neither (null), its gradients are the host's already.
  virtual std::unique_ptr<GradStaging<T>> make_grad_staging() const { return nullptr; }
  virtual Buffer<T> pinned_host_zeros(size_t) const { return nullptr; }
  // A device backend may hold a step's work back to issue it in one piece (a CUDA graph). Between
  // pause_capture(true) and pause_capture(false) the host hands device buffers over mid-step (a gradient bucket to
  // its copy stream or collective): everything issued before has gone to the device, and what is done meanwhile is
  // issued as it comes. Pairs nest.
  virtual void pause_capture(bool) const {}
  // The stream the backend's work runs on (a cudaStream_t; null: the legacy default stream, or no device), which a
  // collective on the backend's buffers orders itself after, and which waits for it.
  virtual void* compute_stream() const { return nullptr; }

  // Sequence-parallel attention round the group's ring (ring_attention.h) with the blocks in the backend's
  // memory; seg is the batch's local segment ids on the host. False: the backend has no such path, and the
  // model runs the host's ring attention on host copies.
  virtual bool ring_attention_forward(T*, T*, const T*, const T*, const T*, const int32_t*, const RingShape&,
                                      const SequenceParallel&) const {
    return false;
  }
  virtual bool ring_attention_backward(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, const T*,
                                       const int32_t*, const RingShape&, const SequenceParallel&) const {
    return false;
  }

  // Mixed precision: a backend that computes in bf16 over fp32 master weights keeps a bf16 compute copy of
  // `master` (the model's trainable weights, or its fp32 base) for its GEMMs: AdamW refreshes it as it updates
  // the weights, and any other write into `master` through the backend marks it for a refresh before its next
  // read. The copy lives as long as `master` does. A backend computing in T throughout ignores it.
  virtual void keep_compute_copy(const Buffer<T>& master) const { (void)master; }
};

// The CPU backend (today's ops: OpenMP loops and OpenBLAS), one instance per scalar type.
template <typename T>
const Backend<T>& cpu_backend();

}  // namespace rt
