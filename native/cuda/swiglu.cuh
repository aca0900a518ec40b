#pragma once
#include <cstddef>
#include "common.cuh"

namespace rt::cuda {

// h = silu(gate) * up, elementwise over n values; h16 (nullable): h rounded to bf16 as well, for a GEMM on bf16
// operands that reads h next.
template <typename T>
void swiglu_forward(T* h, const T* gate, const T* up, size_t n, cudaStream_t stream, bf16* h16 = nullptr);

// dgate = dh * up * silu'(gate), dup = dh * silu(gate) (activation grads, written); dgate may alias dh.
template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dh, const T* gate, const T* up, size_t n, cudaStream_t stream);

}  // namespace rt::cuda
