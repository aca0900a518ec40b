#pragma once
// The bias of a linear layer and a fill, for the backend interface's linear ops and buffers.
#include "common.cuh"

namespace rt::cuda {

// out[N, O] += b[O]
template <typename T>
void bias_add(T* out, const T* b, int N, int O, cudaStream_t stream);
// db[O] += sum_n dout[n, o] (parameter grad, fp32 accumulation; the same bits on every run)
template <typename T>
void bias_grad(float* db, const T* dout, int N, int O, cudaStream_t stream);
// p[0, n) = value
void fill(float* p, size_t n, float value, cudaStream_t stream);

}  // namespace rt::cuda
