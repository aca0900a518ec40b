#pragma once
// SwiGLU fused with its neighbours in the MLP: the forward takes the stacked gate/up GEMM's output (N, 2F) as it
// is (gate's columns, then up's) and writes gate, up and h = silu(gate) * up in one pass (no separate split of the
// columns), plus h rounded to bf16 when the down projection's GEMM reads bf16 operands; the backward writes
// d(gate) and d(up) straight into the stacked (N, 2F) layout the gate/up weight's GEMMs read (no separate join),
// in fp32 and, when asked, bf16. Per element the math is swiglu.cu's, so the fused results equal the unfused ops'
// bits.
#include <cstddef>
#include "common.cuh"

namespace rt::cuda {

// gate[n, c] = packed[n, c], up[n, c] = packed[n, F + c], h = silu(gate) * up; h16 (nullable) = bf16(h).
template <typename T>
void split_swiglu_forward(T* gate, T* up, T* h, bf16* h16, const T* packed, int N, int F, cudaStream_t stream);

// packed[n, c] = dh * up * silu'(gate), packed[n, F + c] = dh * silu(gate); packed16 = bf16(packed). Either may be
// null (not both): bf16 GEMMs with no bias gradient read packed16 alone.
template <typename T>
void swiglu_backward_stacked(T* packed, bf16* packed16, const T* dh, const T* gate, const T* up, int N, int F,
                             cudaStream_t stream);

}  // namespace rt::cuda
