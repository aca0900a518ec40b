#include "cuda_backend.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include "adamw.cuh"
#include "add.cuh"
#include "attention.cuh"
#include "bf16_base.cuh"
#include "bf16_compute.h"
#include "bias.cuh"
#include "cached_attention.cuh"
#include "cross_entropy.cuh"
#include "device_scope.h"
#include "embedding.cuh"
#include "gemm.cuh"
#include "grad_norm.cuh"
#include "grad_staging.h"
#include "linear_fused.cuh"
#include "lora_dropout.cuh"
#include "mlp_fused.h"
#include "ring_attention_device.h"
#include "ring_block.cuh"
#include "rmsnorm.cuh"
#include "rope.cuh"
#include "step_graph.h"
#include "swiglu.cuh"

namespace rt::cuda {
namespace {

// Device scratch that grows to the largest size asked for and is then reused: after the first step of a shape
// no call allocates.
template <typename T>
class Scratch {
 public:
  ~Scratch() { cudaFree(p_); }
  T* get(size_t n) {
    if (n > n_) {
      const StepGraphs::Pause pause;  // a new shape inside a captured step: allocated outside the graph
      CUDA_CHECK(cudaFree(p_));
      p_ = nullptr;
      CUDA_CHECK(cudaMalloc(&p_, sizeof(T) * n));
      n_ = n;
    }
    return p_;
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// Pinned host memory that uploads pass through, so that the copy is asynchronous: the caller's (pageable) array
// is copied here and the device reads it when the stream gets there. A region is handed out once per sync: the
// owner calls synchronized() whenever the stream has caught up, and the regions are free again. A first step
// may outgrow the block; at the next sync it is replaced by one holding the whole step, so later steps of the
// same shapes allocate nothing.
class PinnedStaging {
 public:
  ~PinnedStaging() {
    synchronized();
    cudaFreeHost(base_);
  }
  void* take(size_t bytes) {
    bytes = (bytes + 255) / 256 * 256;
    if (used_ + bytes > cap_) {
      const StepGraphs::Pause pause;
      if (base_) retired_.push_back(base_);
      cap_ = std::max(bytes, 2 * cap_);
      CUDA_CHECK(cudaMallocHost(&base_, cap_));
      used_ = 0;
    }
    void* p = base_ + used_;
    used_ += bytes;
    since_sync_ += bytes;
    return p;
  }
  void synchronized() {
    const StepGraphs::Pause pause;
    for (char* p : retired_) cudaFreeHost(p);
    const bool outgrown = !retired_.empty();
    retired_.clear();
    if (outgrown && since_sync_ > cap_) {
      cudaFreeHost(base_);
      base_ = nullptr;
      cap_ = since_sync_;
      CUDA_CHECK(cudaMallocHost(&base_, cap_));
    }
    used_ = 0;
    since_sync_ = 0;
  }

 private:
  char* base_ = nullptr;
  size_t cap_ = 0, used_ = 0, since_sync_ = 0;
  std::vector<char*> retired_;
};

// What a step leaves on the device until its end, read back in one copy (a device backend's pending losses).
struct StepStatus {
  double loss_sum;  // the cross entropy calls' losses
  int targets;      // positions with a label
  int bad_id;       // first token id outside the vocabulary (kNoBadPosition: none)
  int bad_label;    // first label outside it and not -100
  int pad;
};

// Logits per chunk of a trained LM head (fp32: 1 GiB), when the batch holds more.
constexpr size_t kHeadChunkElements = size_t(1) << 28;

// Uploads larger than this are never part of a step (weights, checkpoints): they go straight from the caller's
// memory, synchronously, rather than through pinned staging.
constexpr size_t kStagedUploadBytes = size_t(16) << 20;

// Frees device memory on whichever thread drops the last reference: with the buffer's own device current for
// the call (asked of the runtime: a release function carries no state), then the thread's previous one.
template <typename T>
void free_on_its_device(T* p, size_t) {
  const StepGraphs::Pause pause;  // a buffer dropped inside a captured step (cudaFree waits for the device)
  int previous = 0;
  cudaGetDevice(&previous);
  cudaPointerAttributes attr{};
  const bool known = cudaPointerGetAttributes(&attr, p) == cudaSuccess && attr.device >= 0;
  if (known && attr.device != previous) cudaSetDevice(attr.device);
  cudaFree(p);
  if (known && attr.device != previous) cudaSetDevice(previous);
}

// n zeros in the memory of the current device, cleared in `stream`'s order (the backend's work runs there, and
// a non-blocking stream is not ordered after the legacy stream a plain cudaMemset would use); freed with the last
// reference.
template <typename T>
Buffer<T> device_zeros(size_t n, cudaStream_t stream) {
  if (n == 0) return std::make_shared<Storage<T>>(nullptr, 0, nullptr);  // nothing to allocate or clear
  const StepGraphs::Pause pause;  // a buffer first needed inside a captured step is made outside the graph
  T* p = nullptr;
  CUDA_CHECK(cudaMalloc(&p, sizeof(T) * n));
  CUDA_CHECK(cudaMemsetAsync(p, 0, sizeof(T) * n, stream));
  return std::make_shared<Storage<T>>(p, n, &free_on_its_device<T>);
}

class CudaBackend final : public Backend<float> {
 public:
  CudaBackend(int device, std::unique_ptr<Gemm> gemm, Precision precision, bool step_graphs)
      : device_(device), own_stream_(device), stream_(own_stream_.stream), graphs_(stream_, step_graphs) {
    if (precision == Precision::bf16) {
      // Every product below then takes bf16 operands, the fused ones (epilogues, stacked projections) too.
      bf16_ = std::make_unique<Bf16Compute>(std::move(gemm), stream_);
      gemm_ = bf16_->rounding_gemm();
    } else {
      gemm_ = std::move(gemm);
    }
    name_ = "cuda:" + std::to_string(device) + (bf16_ ? " bf16" : " fp32") + " (" + gemm_->name() + ")";
  }
  // The members free their scratch and the GEMM's workspace next, on the device they were allocated on.
  ~CudaBackend() override { cudaSetDevice(device_); }
  const char* name() const override { return name_.c_str(); }

  Buffer<float> zeros(size_t n) const override {
    use_device(device_);
    return device_zeros<float>(n, stream_);
  }
  Buffer<int32_t> int_zeros(size_t n) const override {
    use_device(device_);
    return device_zeros<int32_t>(n, stream_);
  }
  bool host_memory() const override { return false; }
  void fill(float* p, size_t n, float value) const override {
    use_device(device_);
    if (bf16_) bf16_->wrote(p, n);
    cuda::fill(p, n, value, stream_);
  }
  void copy(float* dst, const float* src, size_t n) const override {
    use_device(device_);
    if (bf16_) bf16_->wrote(dst, n);
    if (n) CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(float) * n, cudaMemcpyDeviceToDevice, stream_));
  }
  // The host side of an upload may be reused as soon as it returns (a step's small uploads are staged in pinned
  // memory and leave asynchronously); a download returns once the data is there.
  void upload(float* dst, const float* host, size_t n) const override {
    use_device(device_);
    if (bf16_) bf16_->wrote(dst, n);
    upload_bytes(dst, host, sizeof(float) * n);
  }
  void download(float* host, const float* src, size_t n) const override {
    use_device(device_);
    download_bytes(host, src, sizeof(float) * n);
  }
  void upload_ints(int32_t* dst, const int32_t* host, size_t n) const override {
    use_device(device_);
    upload_bytes(dst, host, sizeof(int32_t) * n);
  }

  Buffer<uint16_t> bf16_zeros(size_t n) const override {
    use_device(device_);
    return device_zeros<uint16_t>(n, stream_);
  }
  void upload_bf16(uint16_t* dst, const uint16_t* host, size_t n) const override {
    use_device(device_);
    upload_bytes(dst, host, sizeof(uint16_t) * n);
  }
  void download_bf16(uint16_t* host, const uint16_t* src, size_t n) const override {
    use_device(device_);
    download_bytes(host, src, sizeof(uint16_t) * n);
  }
  void widen_bf16(float* dst, const uint16_t* src, size_t n) const override {
    use_device(device_);
    if (bf16_) bf16_->wrote(dst, n);
    cuda::widen_bf16(dst, src, n, stream_);
  }
  void round_to_bf16(uint16_t* dst, const float* src, size_t n) const override {
    use_device(device_);
    cuda::round_to_bf16(dst, src, n, stream_);
  }
  void embedding_forward_bf16(float* out, const int32_t* ids, const uint16_t* wte, int N, int C, int V) const override {
    use_device(device_);
    vocab_ = V;
    cuda::embedding_forward_bf16(out, ids, wte, N, C, V, &status()->bad_id, stream_);
    if (!deferring_) check_status(ids, nullptr, V);
  }
  void lora_dropout_forward(float* xd, const float* x, size_t n, double p, uint64_t seed,
                            uint64_t stream) const override {
    use_device(device_);
    cuda::lora_dropout_forward(xd, x, n, p, seed, stream, stream_);
  }
  void lora_dropout_backward(float* dinp, const float* dxd, size_t n, double p, uint64_t seed,
                             uint64_t stream) const override {
    use_device(device_);
    cuda::lora_dropout_backward(dinp, dxd, n, p, seed, stream, stream_);
  }

  void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
            float beta, float* C, int ldc) const override {
    use_device(device_);
    cuda::gemm(*gemm_, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, stream_);
  }
  void linear_forward(float* out, const float* inp, const float* w, const float* b, int N, int I,
                      int O) const override {
    use_device(device_);
    // bias in the GEMM (in bf16 the GEMM rounds the operands; the epilogue adds in fp32)
    linear_forward_epilogue(*gemm_, out, inp, w, b, (const float*)nullptr, N, I, O, stream_);
  }
  // Fewer, wider kernels (linear_fused.cuh): stacked projections as one GEMM, the residual in the epilogue.
  void linear_forward_stacked(float* const* outs, const float* inp, const float* w, const float* bias, const int* O,
                              int parts, int N, int I) const override {
    use_device(device_);
    int total = 0;
    for (int j = 0; j < parts; j++) total += O[j];
    cuda::linear_forward_stacked(*gemm_, outs, inp, w, bias, O, parts, N, I, stacked_.get((size_t)N * total), stream_);
  }
  void linear_backward_stacked(float* dinp, float* dw, float* dbias, const float* const* douts, const float* inp,
                               const float* w, const int* O, int parts, int N, int I, float* scratch) const override {
    use_device(device_);
    int total = 0;
    for (int j = 0; j < parts; j++) total += O[j];
    cuda::linear_backward_stacked(*gemm_, dinp, dw, dbias, douts, inp, w, O, parts, N, I,
                                  stacked_.get((size_t)N * total), stream_);
  }
  void linear_forward_residual(float* out, const float* residual, const float* inp, const float* w, const float* b,
                               int N, int I, int O, float* scratch) const override {
    use_device(device_);
    linear_forward_epilogue(*gemm_, out, inp, w, b, residual, N, I, O, stream_);
  }
  void rmsnorm_linear_stacked(float* const* outs, float* ln, float* rstd, const float* inp, const float* norm_w,
                              double eps, const float* w, const float* bias, const int* O, int parts, int N,
                              int C) const override {
    use_device(device_);
    int total = 0;
    for (int j = 0; j < parts; j++) total += O[j];
    cuda::rmsnorm_linear_stacked(fused(), outs, ln, rstd, inp, norm_w, eps, w, bias, O, parts, N, C,
                                 stacked_.get((size_t)N * total));
  }
  // The MLP in fewer kernels, its GEMM operands rounded to bf16 by the kernels that produce them (mlp_fused.h).
  void mlp_forward(const MlpForward<float>& m) const override {
    use_device(device_);
    cuda::mlp_forward(fused(), m, stacked_.get((size_t)m.N * 2 * m.F));
  }
  void swiglu_down_backward(float* dh, float* dw_down, float* db_down, float* h, const float* dout, const float* gate,
                            const float* up, const float* w_down, int N, int C, int F) const override {
    use_device(device_);
    cuda::swiglu_down_backward(fused(), dh, dw_down, db_down, h, dout, gate, up, w_down, N, C, F);
  }
  void swiglu_stacked_backward(float* dinp, float* dw_gu, float* db_gu, float*, float*, const float* dh,
                               const float* gate, const float* up, const float* inp, const float* w_gu, int N, int C,
                               int F, float*) const override {
    use_device(device_);
    cuda::swiglu_stacked_backward(fused(), dinp, dw_gu, db_gu, dh, gate, up, inp, w_gu, N, C, F,
                                  stacked_.get((size_t)N * 2 * F));
  }
  // Chunks of the head big enough that the weight gradient's GEMM (K = the chunk's rows) stays compute-bound,
  // small enough that a chunk's logits stay far below the whole batch's: at most kHeadChunkElements logits.
  int head_chunk_rows(int V) const override {
    return std::max(256, (int)std::min<size_t>(kHeadChunkElements / V, 1 << 20));
  }
  void linear_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w, int N,
                       int I, int O) const override {
    use_device(device_);
    if (dinp) gemm(false, false, N, I, O, 1.f, dout, O, w, I, 0.f, dinp, I);
    if (dw) gemm(true, false, O, I, N, 1.f, dout, O, inp, I, 1.f, dw, I);
    if (db) bias_grad(db, dout, N, O, stream_);
  }
  void embedding_forward(float* out, const int32_t* ids, const float* wte, int N, int C, int V) const override {
    use_device(device_);
    vocab_ = V;
    cuda::embedding_forward(out, ids, wte, N, C, V, &status()->bad_id, stream_);
    if (!deferring_) check_status(ids, nullptr, V);
  }
  void embedding_backward(float* dwte, const float* dout, const int32_t* ids, int N, int C) const override {
    use_device(device_);
    // The forward has range-checked these ids; the kernel's own bound is then never reached.
    cuda::embedding_backward(dwte, dout, ids, N, C, INT_MAX, stream_);
  }
  void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* w, int N, int C,
                       double eps) const override {
    use_device(device_);
    cuda::rmsnorm_forward(out, rstd, inp, w, N, C, eps, stream_);
  }
  void rmsnorm_backward(float* dinp, float* dw, const float* dout, const float* inp, const float* w, const float* rstd,
                        int N, int C) const override {
    use_device(device_);
    cuda::rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C, stream_);
  }
  void rope_forward(float* x, const int32_t* pos, const double* inv_freq, int N, int heads, int D) const override {
    use_device(device_);
    cuda::rope_forward(x, pos, device_freqs(inv_freq, D / 2), N, heads, D, stream_);
  }
  void rope_backward(float* dx, const int32_t* pos, const double* inv_freq, int N, int heads, int D) const override {
    use_device(device_);
    cuda::rope_backward(dx, pos, device_freqs(inv_freq, D / 2), N, heads, D, stream_);
  }
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                         const std::vector<SegmentRun>& runs, const AttentionShape& s,
                         AttentionScratch<float>&) const override {
    use_device(device_);
    if (bf16_) return bf16_->attention_forward(out, lse, q, k, v, segment_starts(runs, s), shape(s));
    cuda::attention_forward(out, lse, q, k, v, segment_starts(runs, s), shape(s), stream_);
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* out, const float* lse, const std::vector<SegmentRun>& runs,
                          const AttentionShape& s, AttentionScratch<float>&) const override {
    use_device(device_);
    float* delta = floats_.get((size_t)s.B * s.H * s.T);
    if (bf16_)
      return bf16_->attention_backward(dq, dk, dv, delta, dout, q, k, v, out, lse, segment_starts(runs, s), shape(s));
    cuda::attention_backward(dq, dk, dv, delta, dout, q, k, v, out, lse, segment_starts(runs, s), shape(s), stream_);
  }
  void cached_attention(float* att, const float* q, const float* k, const float* v, int start, int n, int H, int KVH,
                        int D) const override {
    use_device(device_);
    cuda::cached_attention(att, q, k, v, start, n, H, KVH, D, stream_);
  }
  void add(float* out, const float* a, const float* b, size_t n) const override {
    use_device(device_);
    cuda::add(out, a, b, n, stream_);
  }
  void add_inplace(float* acc, const float* x, size_t n) const override {
    use_device(device_);
    cuda::add_inplace(acc, x, n, stream_);
  }
  void swiglu_forward(float* h, const float* gate, const float* up, size_t n) const override {
    use_device(device_);
    cuda::swiglu_forward(h, gate, up, n, stream_);
  }
  void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                       size_t n) const override {
    use_device(device_);
    cuda::swiglu_backward(dgate, dup, dh, gate, up, n, stream_);
  }
  LossSum cross_entropy_forward_backward(float* losses, float* dlogits, const float* logits, const int32_t* labels,
                                         int N, int V, double scale, const float* weights) const override {
    use_device(device_);
    StepStatus* st = status();
    vocab_ = V;
    // One kernel: the log-sum-exp, the losses and their sum, the target count and the gradient in place.
    cuda::cross_entropy_forward_backward(losses, dlogits, logits, labels, N, V, (float)scale, &st->loss_sum,
                                         &st->bad_label, stream_, weights, &st->targets);
    if (deferring_) return {};  // pending_losses() reads the sums at the end of the step
    return check_status(nullptr, labels, V);
  }
  double sum_of_squares(const float* x, size_t n) const override {
    use_device(device_);
    const StepGraphs::Pause pause;  // read back at once
    double* sum = doubles_.get(1);
    CUDA_CHECK(cudaMemsetAsync(sum, 0, sizeof(double), stream_));
    cuda::sum_of_squares(sum, x, n, stream_);
    double host = 0;
    download_bytes(&host, sum, sizeof(double));
    return host;
  }
  // A step starts from clear sums: a step that failed or was cancelled leaves none behind.
  // The deferred span is the step: its device work is captured into graphs from the second step on (step_graph.h).
  void defer_losses(bool on) const override {
    use_device(device_);
    if (on && status_) clear_status();
    deferring_ = on;
    if (on) graphs_.begin_step();
    else graphs_.abandon_step();  // the step ended early (cancelled, failed); after pending_losses, nothing left
  }
  LossSum pending_losses() const override {
    use_device(device_);
    graphs_.end_step();
    return check_status(nullptr, nullptr, vocab_);
  }
  void pause_capture(bool pause) const override {
    if (pause) graphs_.pause();
    else graphs_.resume();
  }
  void* compute_stream() const override { return stream_; }
  void adamw_update(float* p, const float* g, float* m, float* v, size_t n, const AdamWStep& s,
                    bool decay) const override {
    use_device(device_);
    // In bf16 the same kernel refreshes the weights' compute copy; the clipping factor comes in s.grad_scale.
    cuda::adamw_update(p, bf16_ ? bf16_->copy_slot(p, n) : nullptr, g, m, v, n, s, decay, nullptr, stream_);
  }
  void keep_compute_copy(const Buffer<float>& master) const override {
    use_device(device_);
    if (bf16_) bf16_->keep_copy(master);
  }
  std::unique_ptr<GradStaging<float>> make_grad_staging() const override {
    return cuda::make_grad_staging(device_, stream_);
  }
  Buffer<float> pinned_host_zeros(size_t n) const override {
    use_device(device_);
    return cuda::pinned_host_zeros(n);
  }
  bool ring_attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                              const int32_t* seg, const RingShape& s, const SequenceParallel& sp) const override {
    if (!ring_block_supported(s.D)) return false;
    const StepGraphs::Pause pause;  // the ring's exchanges are driven by the host, block by block
    device_ring().forward(out, lse, q, k, v, seg, s, sp);
    return true;
  }
  bool ring_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                               const float* v, const float* out, const float* lse, const int32_t* seg,
                               const RingShape& s, const SequenceParallel& sp) const override {
    if (!ring_block_supported(s.D)) return false;
    const StepGraphs::Pause pause;
    device_ring().backward(dq, dk, dv, dout, q, k, v, out, lse, seg, s, sp);
    return true;
  }

 private:
  static AttnShape shape(const AttentionShape& s) { return {s.B, s.T, s.H, s.KVH, s.D}; }
  FusedOps fused() const { return {*gemm_, bf16_.get(), stream_}; }
  // The step status on the device, set to "nothing yet" the first time (and after each read).
  StepStatus* status() const {
    if (!status_) {
      status_ = reinterpret_cast<StepStatus*>(status_scratch_.get(sizeof(StepStatus)));
      clear_status();
    }
    return status_;
  }
  void clear_status() const {
    CUDA_CHECK(cudaMemsetAsync(status_, 0, sizeof(StepStatus), stream_));
    CUDA_CHECK(cudaMemsetAsync(&status_->bad_id, 0x7f, 2 * sizeof(int), stream_));  // kNoBadPosition twice
  }
  // Reads the status back in one copy and clears it: the losses and targets since the last read, or the first
  // bad token id or label in the CPU's words (ids, labels: where to read the bad value, when known).
  LossSum check_status(const int32_t* ids, const int32_t* labels, int V) const {
    StepStatus* st = status();
    auto* host = static_cast<StepStatus*>(staging_.take(sizeof(StepStatus)));
    CUDA_CHECK(cudaMemcpyAsync(host, st, sizeof(StepStatus), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    const StepStatus s = *host;
    staging_.synchronized();
    clear_status();
    auto value_at = [&](const int32_t* values, int at) {
      int32_t v = 0;
      if (values) download_bytes(&v, values + at, sizeof v);
      return values ? " " + std::to_string(v) : std::string();
    };
    if (s.bad_id != kNoBadPosition)
      fail("embedding_forward", "token id", value_at(ids, s.bad_id), " at position ", s.bad_id, " outside vocab [0,", V,
           ")");
    if (s.bad_label != kNoBadPosition)
      fail("cross_entropy", "label", value_at(labels, s.bad_label), " at position ", s.bad_label, " outside vocab [0,",
           V, ") and not -100");
    return {s.loss_sum, s.targets};
  }
  // Small uploads through pinned staging (asynchronous); large ones straight from pageable memory, which the
  // runtime stages before the call returns. Both in the stream's order.
  void upload_bytes(void* dst, const void* host, size_t bytes) const {
    if (bytes == 0) return;
    if (bytes > kStagedUploadBytes) {
      const StepGraphs::Pause pause;  // a pageable copy waits for the stream
      CUDA_CHECK(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, stream_));
      return;
    }
    void* staged = staging_.take(bytes);
    std::memcpy(staged, host, bytes);
    CUDA_CHECK(cudaMemcpyAsync(dst, staged, bytes, cudaMemcpyHostToDevice, stream_));
  }
  // In the stream's order: a copy into pageable memory returns once it has landed; into pinned memory it is
  // asynchronous, so the stream is waited for.
  void download_bytes(void* host, const void* src, size_t bytes) const {
    if (bytes == 0) return;
    const StepGraphs::Pause pause;
    CUDA_CHECK(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, stream_));
    cudaPointerAttributes attr{};
    if (cudaPointerGetAttributes(&attr, host) != cudaSuccess) cudaGetLastError();
    if (attr.type == cudaMemoryTypeHost) CUDA_CHECK(cudaStreamSynchronize(stream_));
    staging_.synchronized();  // the stream has caught up
  }
  // The first position of each token's segment, from the runs the host found, uploaded to the device once per
  // batch (every layer's attention, forward and backward, sees the same runs) through pinned staging.
  const int32_t* segment_starts(const std::vector<SegmentRun>& runs, const AttentionShape& s) const {
    const size_t N = (size_t)s.B * s.T;
    const bool same =
        starts_B_ == s.B && starts_T_ == s.T && starts_runs_.size() == runs.size() &&
        std::equal(runs.begin(), runs.end(), starts_runs_.begin(), [](const SegmentRun& a, const SegmentRun& b) {
          return a.row == b.row && a.start == b.start && a.len == b.len;
        });
    int32_t* d = starts_.get(N);
    if (same) return d;
    auto* host = static_cast<int32_t*>(staging_.take(sizeof(int32_t) * N));
    std::fill(host, host + N, 0);
    for (const SegmentRun& r : runs)
      for (int t = r.start; t < r.start + r.len; t++) host[(size_t)r.row * s.T + t] = r.start;
    CUDA_CHECK(cudaMemcpyAsync(d, host, sizeof(int32_t) * N, cudaMemcpyHostToDevice, stream_));
    starts_runs_.assign(runs.begin(), runs.end());  // keeps its capacity: no allocation for as many runs again
    starts_B_ = s.B, starts_T_ = s.T;
    return d;
  }

  // The RoPE frequencies are the model's host table (fixed once the model is built): uploaded when they
  // differ from the last ones seen, so a step reuses the device copy without a transfer.
  const double* device_freqs(const double* host, int n) const {
    if (freqs_host_.size() != (size_t)n || !std::equal(freqs_host_.begin(), freqs_host_.end(), host)) {
      freqs_host_.assign(host, host + n);
      upload_bytes(freqs_.get(n), host, sizeof(double) * n);
    }
    return freqs_.get(n);
  }

  // The backend's stream, made on its device and destroyed after every member that may still use it.
  struct OwnStream {
    cudaStream_t stream = nullptr;
    explicit OwnStream(int device) {
      use_device(device);
      // Non-blocking: never ordered after the legacy default stream's work (nor it after ours), so the stream can
      // be captured into a graph, and other code's synchronous calls do not serialise with the step.
      CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    }
    ~OwnStream() { cudaStreamDestroy(stream); }
  };

  int device_;  // made current on the calling thread by every entry (device_scope.h)
  OwnStream own_stream_;
  cudaStream_t stream_;  // every op in issue order; gradient copies and collectives order themselves with events
  mutable StepGraphs graphs_;
  std::unique_ptr<Gemm> gemm_;
  std::string name_;
  mutable Scratch<double> doubles_;
  mutable Scratch<float> floats_;
  mutable Scratch<float> stacked_;  // a stacked projection's (N, sum of its parts) output or gradient
  mutable Scratch<int32_t> starts_;
  mutable std::vector<SegmentRun> starts_runs_;  // the runs starts_ holds
  mutable int starts_B_ = 0, starts_T_ = 0;
  mutable PinnedStaging staging_;
  mutable Scratch<char> status_scratch_;
  mutable StepStatus* status_ = nullptr;
  mutable bool deferring_ = false;
  mutable int vocab_ = 0;  // of the last op that checks ids, for a bad one's message
  mutable Scratch<double> freqs_;
  mutable std::vector<double> freqs_host_;
  mutable std::unique_ptr<DeviceRingAttention> ring_;  // sequence parallelism's buffers, once a ring is used
  DeviceRingAttention& device_ring() const {
    if (!ring_) ring_ = std::make_unique<DeviceRingAttention>(device_, stream_, bf16_ != nullptr);
    return *ring_;
  }
  std::unique_ptr<Bf16Compute> bf16_;  // precision bf16 (bf16_compute.h); null in fp32
};

}  // namespace

bool step_graphs_on(StepGraphMode mode) {
  if (mode != StepGraphMode::automatic) return mode == StepGraphMode::on;
  if (const char* v = std::getenv("RINGTUNE_CUDA_GRAPHS")) {
    const std::string s = v;
    if (s == "1" || s == "on") return true;
    if (s == "0" || s == "off") return false;
    fail("make_cuda_backend", "RINGTUNE_CUDA_GRAPHS must be on, off, 1 or 0, got '", s, "'");
  }
#ifdef RINGTUNE_CUDA_EMU
  return false;  // under the emulator, as asked (the tests turn it on)
#else
  return true;
#endif
}

std::unique_ptr<Backend<float>> make_cuda_backend(int device, Precision precision, StepGraphMode graphs) {
  CUDA_CHECK(cudaSetDevice(device));
  return std::make_unique<CudaBackend>(device, make_gemm(), precision, step_graphs_on(graphs));
}

std::unique_ptr<Backend<float>> make_cuda_backend(int device, std::unique_ptr<Gemm> gemm, Precision precision,
                                                  StepGraphMode graphs) {
  CUDA_CHECK(cudaSetDevice(device));
  return std::make_unique<CudaBackend>(device, std::move(gemm), precision, step_graphs_on(graphs));
}

}  // namespace rt::cuda
