// The CPU backend: each entry forwards to the op of the same name in ops/, the numerical reference.
#include <algorithm>
#include "backend.h"
#include "blas.h"
#include "error.h"
#include "ops/add.h"
#include "ops/cached_attention.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"
#include "random.h"
#include "tensor_io.h"

namespace rt {
namespace {

template <typename T>
class CpuBackend final : public Backend<T> {
 public:
  const char* name() const override { return "cpu"; }
  Buffer<T> zeros(size_t n) const override { return parallel_zeros<T>(n); }
  Buffer<int32_t> int_zeros(size_t n) const override { return parallel_zeros<int32_t>(n); }
  bool host_memory() const override { return true; }
  void fill(T* p, size_t n, T value) const override { parallel_fill(p, n, value); }
  void copy(T* dst, const T* src, size_t n) const override { std::copy(src, src + n, dst); }
  void upload(T* dst, const T* host, size_t n) const override { std::copy(host, host + n, dst); }
  void download(T* host, const T* src, size_t n) const override { std::copy(src, src + n, host); }
  void upload_ints(int32_t* dst, const int32_t* host, size_t n) const override { std::copy(host, host + n, dst); }
  Buffer<uint16_t> bf16_zeros(size_t n) const override { return parallel_zeros<uint16_t>(n); }
  void upload_bf16(uint16_t* dst, const uint16_t* host, size_t n) const override { std::copy(host, host + n, dst); }
  void download_bf16(uint16_t* host, const uint16_t* src, size_t n) const override { std::copy(src, src + n, host); }
  void widen_bf16(T* dst, const uint16_t* src, size_t n) const override {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] = (T)bf16_to_float(src[i]);
  }
  void round_to_bf16(uint16_t* dst, const T* src, size_t n) const override {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] = float_to_bf16((float)src[i]);
  }
  void embedding_forward_bf16(T* out, const int32_t* ids, const uint16_t* wte, int N, int C, int V) const override {
    for (int n = 0; n < N; n++)
      if (ids[n] < 0 || ids[n] >= V)
        fail("embedding_forward", "token id ", ids[n], " at position ", n, " outside vocab [0,", V, ")");
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
      for (int c = 0; c < C; c++) out[(size_t)n * C + c] = (T)bf16_to_float(wte[(size_t)ids[n] * C + c]);
  }
  void lora_dropout_forward(T* xd, const T* x, size_t n, double p, uint64_t seed, uint64_t stream) const override {
    const T kept_scale = (T)(1.0 / (1.0 - p));
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) xd[i] = uniform01(seed, stream, i) >= p ? x[i] * kept_scale : T(0);
  }
  void lora_dropout_backward(T* dinp, const T* dxd, size_t n, double p, uint64_t seed, uint64_t stream) const override {
    const T kept_scale = (T)(1.0 / (1.0 - p));
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dinp[i] += uniform01(seed, stream, i) >= p ? dxd[i] * kept_scale : T(0);
  }
  void gemm(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb, T beta, T* C,
            int ldc) const override {
    rt::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  void linear_forward(T* out, const T* inp, const T* w, const T* b, int N, int I, int O) const override {
    rt::linear_forward(out, inp, w, b, N, I, O);
  }
  void linear_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w, int N, int I,
                       int O) const override {
    rt::linear_backward(dinp, dw, db, dout, inp, w, N, I, O);
  }
  void embedding_forward(T* out, const int32_t* ids, const T* wte, int N, int C, int V) const override {
    rt::embedding_forward(out, ids, wte, N, C, V);
  }
  void embedding_backward(T* dwte, const T* dout, const int32_t* ids, int N, int C) const override {
    rt::embedding_backward(dwte, dout, ids, N, C);
  }
  void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* w, int N, int C, double eps) const override {
    rt::rmsnorm_forward(out, rstd, inp, w, N, C, eps);
  }
  void rmsnorm_backward(T* dinp, T* dw, const T* dout, const T* inp, const T* w, const T* rstd, int N,
                        int C) const override {
    rt::rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C);
  }
  void rope_forward(T* x, const int32_t* pos, const double* inv_freq, int N, int heads, int D) const override {
    rt::rope_forward(x, pos, inv_freq, N, heads, D);
  }
  void rope_backward(T* dx, const int32_t* pos, const double* inv_freq, int N, int heads, int D) const override {
    rt::rope_backward(dx, pos, inv_freq, N, heads, D);
  }
  void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const std::vector<SegmentRun>& runs,
                         const AttentionShape& s, AttentionScratch<T>& scratch) const override {
    rt::attention_forward(out, lse, q, k, v, runs, s, scratch);
  }
  void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                          const T* lse, const std::vector<SegmentRun>& runs, const AttentionShape& s,
                          AttentionScratch<T>& scratch) const override {
    rt::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, runs, s, scratch);
  }
  void cached_attention(T* att, const T* q, const T* k, const T* v, int start, int n, int H, int KVH,
                        int D) const override {
    rt::cached_attention(att, q, k, v, start, n, H, KVH, D);
  }
  void add(T* out, const T* a, const T* b, size_t n) const override { rt::add(out, a, b, n); }
  void add_inplace(T* acc, const T* x, size_t n) const override { rt::add_inplace(acc, x, n); }
  void swiglu_forward(T* h, const T* gate, const T* up, size_t n) const override { rt::swiglu_forward(h, gate, up, n); }
  void swiglu_backward(T* dgate, T* dup, const T* dh, const T* gate, const T* up, size_t n) const override {
    rt::swiglu_backward(dgate, dup, dh, gate, up, n);
  }
  LossSum cross_entropy_forward_backward(T* losses, T* dlogits, const T* logits, const int32_t* labels, int N, int V,
                                         double scale, const float* weights) const override {
    return rt::cross_entropy_forward_backward(losses, dlogits, logits, labels, N, V, scale, weights);
  }
  double sum_of_squares(const T* x, size_t n) const override { return rt::sum_of_squares(x, n); }
  void adamw_update(T* p, const T* g, T* m, T* v, size_t n, const AdamWStep& s, bool decay) const override {
    rt::adamw_update(p, g, m, v, n, s, decay);
  }
};

}  // namespace

template <typename T>
const Backend<T>& cpu_backend() {
  static const CpuBackend<T> backend;
  return backend;
}

template const Backend<float>& cpu_backend<float>();
template const Backend<double>& cpu_backend<double>();

}  // namespace rt
