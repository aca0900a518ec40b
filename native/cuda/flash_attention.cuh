#pragma once
// Attention on tensor cores for bf16 (FlashAttention-2 style, kernels in flash_attention_kernels.cuh): the
// same contract as attention.cuh (packed rows through seg_start, grouped-query heads, causal, lse kept in
// natural units for the backward), for head dims 64 and 128. attention_forward/backward<bf16> route here
// when flash_attention_supported says so; the SIMT kernels stay the fp32 path and the tests' reference.
#include "attention.cuh"

namespace rt::cuda {

// D in {64, 128}, every tensor 16-byte aligned (128-bit loads; rows are D * 2 bytes, so they stay aligned), and
// the device lets a block opt into the kernels' shared memory (up to 145 KiB at D = 128: not on sm_86/sm_89).
bool flash_attention_supported(const AttnShape& s, const void* q, const void* k, const void* v, const void* out);

// out[N, H*D] (bf16), lse[B, H, T] (fp32); q[N, H*D], k/v[N, KVH*D] after RoPE; seg_start as in attention.cuh.
void flash_attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                             const int32_t* seg_start, const AttnShape& s, cudaStream_t stream);

// dq, dk, dv (written); delta[B, H, T] fp32 scratch.
void flash_attention_backward(bf16* dq, bf16* dk, bf16* dv, float* delta, const bf16* dout, const bf16* q,
                              const bf16* k, const bf16* v, const bf16* out, const float* lse, const int32_t* seg_start,
                              const AttnShape& s, cudaStream_t stream);

}  // namespace rt::cuda
