#pragma once
// The MLP half of a decoder layer on the device in the fewest kernels (backend.h's mlp_forward,
// swiglu_down_backward and swiglu_stacked_backward): the split of the stacked gate/up GEMM's columns fused with
// SwiGLU, SwiGLU's gradient written straight into the stacked layout, and in precision bf16 each GEMM operand
// rounded by the kernel that produces it (rmsnorm's output, h, the stacked gradient, dout once for two GEMMs)
// rather than by a cast kernel before each GEMM. fp32 gives the unfused ops' bits; bf16 the bits of the unfused
// ops over the same rounding GEMM (the rounding of a value does not depend on which kernel does it).
#include "backend.h"
#include "common.cuh"

namespace rt::cuda {

class Gemm;
class Bf16Compute;

// The backend's GEMM (in bf16 the rounding one), its bf16 compute (null in fp32) and its stream.
struct FusedOps {
  Gemm& gemm;
  Bf16Compute* bf16;
  cudaStream_t stream;
};

// rmsnorm writing ln (and in bf16 its rounded copy), then the stacked projection of ln; packed: (N, sum O) scratch.
void rmsnorm_linear_stacked(const FusedOps& f, float* const* outs, float* ln, float* rstd, const float* inp,
                            const float* norm_w, double eps, const float* w, const float* bias, const int* O, int parts,
                            int N, int C, float* packed);
// packed: (N, 2F) scratch.
void mlp_forward(const FusedOps& f, const MlpForward<float>& m, float* packed);
void swiglu_down_backward(const FusedOps& f, float* dh, float* dw_down, float* db_down, float* h, const float* dout,
                          const float* gate, const float* up, const float* w_down, int N, int C, int F);
// packed: (N, 2F) scratch.
void swiglu_stacked_backward(const FusedOps& f, float* dinp, float* dw_gu, float* db_gu, const float* dh,
                             const float* gate, const float* up, const float* inp, const float* w_gu, int N, int C,
                             int F, float* packed);

}  // namespace rt::cuda
