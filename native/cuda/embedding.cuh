#pragma once
#include "common.cuh"

namespace rt::cuda {

// out[N,C] = wte[ids[n], :]. An id outside [0, V) gives a zero row and, when bad is not null, lowers *bad to its
// position (the caller sets kNoBadPosition first: *bad is then the first bad position, as the CPU reports).
template <typename T>
void embedding_forward(T* out, const int32_t* ids, const T* wte, int N, int C, int V, int* bad, cudaStream_t stream);

// dwte[V,C] += scatter of dout[N,C] by ids (fp32 parameter gradient; atomics, so repeated ids add up).
template <typename T>
void embedding_backward(float* dwte, const T* dout, const int32_t* ids, int N, int C, int V, cudaStream_t stream);

}  // namespace rt::cuda
