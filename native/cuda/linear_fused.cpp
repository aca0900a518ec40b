#include "linear_fused.cuh"

#include "bias.cuh"
#include "stacked_columns.cuh"

namespace rt::cuda {
namespace {

template <typename T>
StackedParts<T> parts_of(T* const* p, const int* O, int parts, const char* what) {
  require(parts >= 1 && parts <= kMaxStackedParts, what, "parts=", parts, " (1 to ", kMaxStackedParts, ")");
  StackedParts<T> s;
  s.parts = parts;
  for (int j = 0; j < parts; j++) s.p[j] = p[j], s.width[j] = O[j];
  return s;
}

}  // namespace

template <typename T>
void linear_forward_epilogue(Gemm& impl, T* out, const T* inp, const T* w, const T* b, const T* residual, int N, int I,
                             int O, cudaStream_t stream) {
  GemmArgs g;
  g.ta = false, g.tb = true, g.M = N, g.N = O, g.K = I, g.alpha = 1.f;
  g.A = inp, g.lda = I, g.B = w, g.ldb = I, g.beta = 0.f, g.C = out, g.ldc = O;
  g.ab = dtype_of<T>(), g.c = dtype_of<T>();
  g.bias = b, g.residual = residual, g.ldr = O;
  impl.run(g, stream);
}

template <typename T>
void linear_forward_stacked(Gemm& impl, T* const* outs, const T* inp, const T* w, const T* bias, const int* O,
                            int parts, int N, int I, T* packed, cudaStream_t stream) {
  const StackedParts<T> s = parts_of(outs, O, parts, "linear_forward_stacked");
  // packed (N, total) = inp [W_0; W_1; ...]^T + [b_0, b_1, ...]: one GEMM, the biases in its epilogue
  linear_forward_epilogue<T>(impl, packed, inp, w, bias, nullptr, N, I, s.total(), stream);
  split_columns(s, packed, N, stream);
}

template <typename T>
void linear_backward_stacked(Gemm& impl, T* dinp, float* dw, float* dbias, const T* const* douts, const T* inp,
                             const T* w, const int* O, int parts, int N, int I, T* packed, cudaStream_t stream) {
  const StackedParts<T> s = parts_of(const_cast<T* const*>(douts), O, parts, "linear_backward_stacked");
  const int total = s.total();
  join_columns(packed, s, N, stream);
  // dinp (N, I) = packed (N, total) W (total, I);  dW (total, I) += packed^T inp;  db += column sums
  if (dinp) cuda::gemm(impl, false, false, N, I, total, 1.f, packed, total, w, I, 0.f, dinp, I, stream);
  if (dw) cuda::gemm(impl, true, false, total, I, N, 1.f, packed, total, inp, I, 1.f, dw, I, stream);
  if (dbias) bias_grad(dbias, packed, N, total, stream);
}

template void linear_forward_epilogue<float>(Gemm&, float*, const float*, const float*, const float*, const float*, int,
                                             int, int, cudaStream_t);
template void linear_forward_stacked<float>(Gemm&, float* const*, const float*, const float*, const float*, const int*,
                                            int, int, int, float*, cudaStream_t);
template void linear_backward_stacked<float>(Gemm&, float*, float*, float*, const float* const*, const float*,
                                             const float*, const int*, int, int, int, float*, cudaStream_t);
template void linear_forward_epilogue<bf16>(Gemm&, bf16*, const bf16*, const bf16*, const bf16*, const bf16*, int, int,
                                            int, cudaStream_t);
template void linear_forward_stacked<bf16>(Gemm&, bf16* const*, const bf16*, const bf16*, const bf16*, const int*, int,
                                           int, int, bf16*, cudaStream_t);
template void linear_backward_stacked<bf16>(Gemm&, bf16*, float*, float*, const bf16* const*, const bf16*, const bf16*,
                                            const int*, int, int, int, bf16*, cudaStream_t);

}  // namespace rt::cuda
