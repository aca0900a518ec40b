#include "cuda_backend.h"

#include <algorithm>
#include <climits>
#include <string>
#include <vector>
#include "adamw.cuh"
#include "add.cuh"
#include "attention.cuh"
#include "bf16_base.cuh"
#include "bias.cuh"
#include "cached_attention.cuh"
#include "cross_entropy.cuh"
#include "device_scope.h"
#include "embedding.cuh"
#include "gemm.cuh"
#include "grad_norm.cuh"
#include "lora_dropout.cuh"
#include "rmsnorm.cuh"
#include "rope.cuh"
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

// Frees device memory on whichever thread drops the last reference: with the buffer's own device current for
// the call (asked of the runtime: a release function carries no state), then the thread's previous one.
template <typename T>
void free_on_its_device(T* p, size_t) {
  int previous = 0;
  cudaGetDevice(&previous);
  cudaPointerAttributes attr{};
  const bool known = cudaPointerGetAttributes(&attr, p) == cudaSuccess && attr.device >= 0;
  if (known && attr.device != previous) cudaSetDevice(attr.device);
  cudaFree(p);
  if (known && attr.device != previous) cudaSetDevice(previous);
}

// n zeros in the memory of the current device, freed with the last reference.
template <typename T>
Buffer<T> device_zeros(size_t n) {
  if (n == 0) return std::make_shared<Storage<T>>(nullptr, 0, nullptr);  // nothing to allocate or clear
  T* p = nullptr;
  CUDA_CHECK(cudaMalloc(&p, sizeof(T) * n));
  CUDA_CHECK(cudaMemset(p, 0, sizeof(T) * n));
  return std::make_shared<Storage<T>>(p, n, &free_on_its_device<T>);
}

template <typename T>
T download_one(const T* p) {
  T v{};
  CUDA_CHECK(cudaMemcpy(&v, p, sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}

class CudaBackend final : public Backend<float> {
 public:
  CudaBackend(int device, std::unique_ptr<Gemm> gemm) : device_(device), gemm_(std::move(gemm)) {
    name_ = "cuda:" + std::to_string(device) + " fp32 (" + gemm_->name() + ")";
  }
  // The members free their scratch and the GEMM's workspace next, on the device they were allocated on.
  ~CudaBackend() override { cudaSetDevice(device_); }
  const char* name() const override { return name_.c_str(); }

  Buffer<float> zeros(size_t n) const override {
    use_device(device_);
    return device_zeros<float>(n);
  }
  Buffer<int32_t> int_zeros(size_t n) const override {
    use_device(device_);
    return device_zeros<int32_t>(n);
  }
  bool host_memory() const override { return false; }
  void fill(float* p, size_t n, float value) const override {
    use_device(device_);
    cuda::fill(p, n, value, stream_);
  }
  void copy(float* dst, const float* src, size_t n) const override {
    use_device(device_);
    if (n) CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(float) * n, cudaMemcpyDeviceToDevice, stream_));
  }
  // The seams with the host are synchronous: the host side may be reused as soon as they return.
  void upload(float* dst, const float* host, size_t n) const override {
    use_device(device_);
    if (n) CUDA_CHECK(cudaMemcpy(dst, host, sizeof(float) * n, cudaMemcpyHostToDevice));
  }
  void download(float* host, const float* src, size_t n) const override {
    use_device(device_);
    if (n) CUDA_CHECK(cudaMemcpy(host, src, sizeof(float) * n, cudaMemcpyDeviceToHost));
  }
  void upload_ints(int32_t* dst, const int32_t* host, size_t n) const override {
    use_device(device_);
    if (n) CUDA_CHECK(cudaMemcpy(dst, host, sizeof(int32_t) * n, cudaMemcpyHostToDevice));
  }

  Buffer<uint16_t> bf16_zeros(size_t n) const override {
    use_device(device_);
    return device_zeros<uint16_t>(n);
  }
  void upload_bf16(uint16_t* dst, const uint16_t* host, size_t n) const override {
    use_device(device_);
    if (n) CUDA_CHECK(cudaMemcpy(dst, host, sizeof(uint16_t) * n, cudaMemcpyHostToDevice));
  }
  void download_bf16(uint16_t* host, const uint16_t* src, size_t n) const override {
    use_device(device_);
    if (n) CUDA_CHECK(cudaMemcpy(host, src, sizeof(uint16_t) * n, cudaMemcpyDeviceToHost));
  }
  void widen_bf16(float* dst, const uint16_t* src, size_t n) const override {
    use_device(device_);
    cuda::widen_bf16(dst, src, n, stream_);
  }
  void round_to_bf16(uint16_t* dst, const float* src, size_t n) const override {
    use_device(device_);
    cuda::round_to_bf16(dst, src, n, stream_);
  }
  void embedding_forward_bf16(float* out, const int32_t* ids, const uint16_t* wte, int N, int C, int V) const override {
    use_device(device_);
    int* bad = ints_.get(1);
    CUDA_CHECK(cudaMemsetAsync(bad, 0x7f, sizeof(int), stream_));  // kNoBadPosition
    cuda::embedding_forward_bf16(out, ids, wte, N, C, V, bad, stream_);
    check_ids("embedding_forward", bad, ids, "token id ", V, ")");
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
    gemm(false, true, N, O, I, 1.f, inp, I, w, I, 0.f, out, O);
    if (b) bias_add(out, b, N, O, stream_);
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
    int* bad = ints_.get(1);
    CUDA_CHECK(cudaMemsetAsync(bad, 0x7f, sizeof(int), stream_));  // kNoBadPosition
    cuda::embedding_forward(out, ids, wte, N, C, V, bad, stream_);
    check_ids("embedding_forward", bad, ids, "token id ", V, ")");
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
    cuda::attention_forward(out, lse, q, k, v, segment_starts(runs, s), shape(s), stream_);
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* out, const float* lse, const std::vector<SegmentRun>& runs,
                          const AttentionShape& s, AttentionScratch<float>&) const override {
    use_device(device_);
    float* delta = floats_.get((size_t)s.B * s.H * s.T);
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
    double* sum = doubles_.get(1);
    int* bad = ints_.get(1);
    CUDA_CHECK(cudaMemsetAsync(sum, 0, sizeof(double), stream_));
    CUDA_CHECK(cudaMemsetAsync(bad, 0x7f, sizeof(int), stream_));  // kNoBadPosition
    cuda::cross_entropy_forward_backward(losses, dlogits, logits, labels, N, V, (float)scale, sum, bad, stream_,
                                         weights);
    check_ids("cross_entropy", bad, labels, "label ", V, ") and not -100");
    // The count of targets: the labels are read back (the checking mode; training counts them on the host).
    std::vector<int32_t> host((size_t)N);
    CUDA_CHECK(cudaMemcpy(host.data(), labels, sizeof(int32_t) * N, cudaMemcpyDeviceToHost));
    LossSum r;
    for (int32_t l : host) r.count += l != kIgnoreIndex;
    r.sum = download_one(sum);
    return r;
  }
  double sum_of_squares(const float* x, size_t n) const override {
    use_device(device_);
    double* sum = doubles_.get(1);
    CUDA_CHECK(cudaMemsetAsync(sum, 0, sizeof(double), stream_));
    cuda::sum_of_squares(sum, x, n, stream_);
    return download_one(sum);
  }
  void adamw_update(float* p, const float* g, float* m, float* v, size_t n, const AdamWStep& s,
                    bool decay) const override {
    use_device(device_);
    // fp32 only: no bf16 compute copy to refresh; the clipping factor comes in s.grad_scale.
    cuda::adamw_update(p, nullptr, g, m, v, n, s, decay, nullptr, stream_);
  }

 private:
  static AttnShape shape(const AttentionShape& s) { return {s.B, s.T, s.H, s.KVH, s.D}; }
  // The first bad position an op found (bad: kNoBadPosition when none) and the value there, in the CPU's words.
  static void check_ids(const char* op, const int* bad, const int32_t* values, const char* what, int V,
                        const char* tail) {
    const int at = download_one(bad);
    if (at == kNoBadPosition) return;
    fail(op, what, download_one(values + at), " at position ", at, " outside vocab [0,", V, tail);
  }
  // The first position of each token's segment, from the runs the host found, uploaded to the device.
  const int32_t* segment_starts(const std::vector<SegmentRun>& runs, const AttentionShape& s) const {
    const size_t N = (size_t)s.B * s.T;
    starts_host_.assign(N, 0);
    for (const SegmentRun& r : runs)
      for (int t = r.start; t < r.start + r.len; t++) starts_host_[(size_t)r.row * s.T + t] = r.start;
    int32_t* d = starts_.get(N);
    CUDA_CHECK(cudaMemcpyAsync(d, starts_host_.data(), sizeof(int32_t) * N, cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // starts_host_ is reused by the next call
    return d;
  }

  // The RoPE frequencies are the model's host table (fixed once the model is built): uploaded when they
  // differ from the last ones seen, so a step reuses the device copy without a transfer.
  const double* device_freqs(const double* host, int n) const {
    if (freqs_host_.size() != (size_t)n || !std::equal(freqs_host_.begin(), freqs_host_.end(), host)) {
      freqs_host_.assign(host, host + n);
      CUDA_CHECK(cudaMemcpy(freqs_.get(n), host, sizeof(double) * n, cudaMemcpyHostToDevice));
    }
    return freqs_.get(n);
  }

  int device_;  // made current on the calling thread by every entry (device_scope.h)
  std::unique_ptr<Gemm> gemm_;
  std::string name_;
  cudaStream_t stream_ = nullptr;  // the default stream: every op in order, the checking mode's simplest
  mutable Scratch<int> ints_;
  mutable Scratch<double> doubles_;
  mutable Scratch<float> floats_;
  mutable Scratch<int32_t> starts_;
  mutable std::vector<int32_t> starts_host_;
  mutable Scratch<double> freqs_;
  mutable std::vector<double> freqs_host_;
};

}  // namespace

std::unique_ptr<Backend<float>> make_cuda_backend(int device) {
  CUDA_CHECK(cudaSetDevice(device));
  return std::make_unique<CudaBackend>(device, make_gemm());
}

std::unique_ptr<Backend<float>> make_cuda_backend(int device, std::unique_ptr<Gemm> gemm) {
  CUDA_CHECK(cudaSetDevice(device));
  return std::make_unique<CudaBackend>(device, std::move(gemm));
}

}  // namespace rt::cuda
