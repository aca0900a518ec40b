#pragma once
#include "common.cuh"

namespace rt::cuda {

// out[N,C] = inp * rstd * w, rstd[N] = 1/sqrt(mean(inp^2) + eps), statistics in fp32. out16 (nullable): out
// rounded to bf16 too, written by the same kernel for a GEMM on bf16 operands that reads it next.
template <typename T>
void rmsnorm_forward(T* out, float* rstd, const T* inp, const T* w, int N, int C, double eps, cudaStream_t stream,
                     bf16* out16 = nullptr);

// dinp = (activation grad, written) rstd*(dout*w) - inp*rstd^3/C*sum(dout*w*inp);
// dw[C] += sum_n dout*inp*rstd (fp32 parameter grad; skipped when null)
template <typename T>
void rmsnorm_backward(T* dinp, float* dw, const T* dout, const T* inp, const T* w, const float* rstd, int N, int C,
                      cudaStream_t stream);

}  // namespace rt::cuda
