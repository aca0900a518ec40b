#pragma once
// Causal self-attention over packed rows with grouped-query heads, flash style: the forward keeps O and the
// log-sum-exp per query; the backward recomputes the probabilities tile by tile. No T x T matrix exists.
//
// Segments: seg_start[n] (from segment_starts) is the position within its row of the first token of n's
// segment; query i attends to key j of the same row iff seg_start[i] <= j <= i. Segments must be contiguous
// runs (the CPU backend rejects an id that reappears; here that case is treated as a new segment).
#include "common.cuh"

namespace rt::cuda {

struct AttnShape {
  int B, T, H, KVH, D;  // rows, tokens per row, query heads, key/value heads, head dim
  RT_HD int qdim() const { return H * D; }
  RT_HD int kvdim() const { return KVH * D; }
};

// seg_start[B*T] from segment ids [B*T] (one thread per row: negligible next to the attention itself).
void segment_starts(int32_t* seg_start, const int32_t* segment_ids, int B, int T, cudaStream_t stream);

// out[N, H*D], lse[B, H, T] (fp32); q[N, H*D], k/v[N, KVH*D] after RoPE. D in {32, 64, 128}.
// bf16 runs on tensor cores (flash_attention.cuh) where flash_attention_supported allows (D 64 or 128, aligned
// tensors); fp32 (the checking mode) and the other cases run the SIMT kernels.
template <typename T>
void attention_forward(T* out, float* lse, const T* q, const T* k, const T* v, const int32_t* seg_start,
                       const AttnShape& s, cudaStream_t stream);

// dq, dk, dv (activation grads, written); delta[B, H, T] is fp32 scratch (rowsum(dout * out)).
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, float* delta, const T* dout, const T* q, const T* k, const T* v,
                        const T* out, const float* lse, const int32_t* seg_start, const AttnShape& s,
                        cudaStream_t stream);

// The SIMT kernels alone, whatever T: the fp32 path, and the reference the tensor-core kernels are tested against.
template <typename T>
void simt_attention_forward(T* out, float* lse, const T* q, const T* k, const T* v, const int32_t* seg_start,
                            const AttnShape& s, cudaStream_t stream);
template <typename T>
void simt_attention_backward(T* dq, T* dk, T* dv, float* delta, const T* dout, const T* q, const T* k, const T* v,
                             const T* out, const float* lse, const int32_t* seg_start, const AttnShape& s,
                             cudaStream_t stream);

}  // namespace rt::cuda
