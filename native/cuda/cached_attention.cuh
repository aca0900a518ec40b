#pragma once
#include "common.cuh"

namespace rt::cuda {

// Attention of n new queries q (n, H*D) at cache positions start..start+n-1 over a KV cache k, v
// (capacity, KVH*D) that already holds their keys and values: query i attends to positions 0..start+i.
// att (n, H*D). Scores and sums in fp32.
void cached_attention(float* att, const float* q, const float* k, const float* v, int start, int n, int H, int KVH,
                      int D, cudaStream_t stream);

}  // namespace rt::cuda
