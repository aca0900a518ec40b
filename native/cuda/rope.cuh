#pragma once
#include "common.cuh"

namespace rt::cuda {

// In place on x[N, heads*D], Hugging Face's rotate_half convention (j paired with j + D/2):
// (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin), angle = pos[n] * inv_freq[j] (inv_freq[D/2] on the device,
// in double like the CPU backend's, so long positions keep their phase). The backward is the inverse rotation.
template <typename T>
void rope_forward(T* x, const int32_t* pos, const double* inv_freq, int N, int heads, int D, cudaStream_t stream);
template <typename T>
void rope_backward(T* dx, const int32_t* pos, const double* inv_freq, int N, int heads, int D, cudaStream_t stream);

}  // namespace rt::cuda
