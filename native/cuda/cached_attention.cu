#include <cmath>
#include "cached_attention.cuh"

namespace rt::cuda {
namespace {

constexpr int kBlock = 128;  // threads per (query, head); also the most D handled
constexpr int kChunk = 512;  // positions whose probabilities are staged in shared memory at a time

__device__ __forceinline__ float block_max(float v) {
  __shared__ float part[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = lane < warps ? part[lane] : -INFINITY;
  return warp_max(v);
}

// One block per (query i, head h): the maximum score first, then the positions chunk by chunk, each chunk's
// probabilities staged in shared memory and folded into the output by the threads d < D.
__global__ void cached_attention_kernel(float* att, const float* q, const float* k, const float* v, int start, int H,
                                        int KVH, int D, float scale) {
  __shared__ float p[kChunk];
  const int i = blockIdx.x / H, h = blockIdx.x % H, kvh = h / (H / KVH);
  const int positions = start + i + 1;
  const size_t KV = (size_t)KVH * D;
  const float* qi = q + (size_t)i * H * D + (size_t)h * D;
  auto score = [&](int j) {
    const float* kj = k + (size_t)j * KV + (size_t)kvh * D;
    float s = 0.f;
    for (int d = 0; d < D; d++) s += qi[d] * kj[d];
    return s * scale;
  };
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < positions; j += blockDim.x) mx = fmaxf(mx, score(j));
  mx = block_max(mx);
  float sum = 0.f, acc = 0.f;
  for (int c0 = 0; c0 < positions; c0 += kChunk) {
    const int len = min(kChunk, positions - c0);
    __syncthreads();  // the previous chunk's p is read
    for (int j = threadIdx.x; j < len; j += blockDim.x) {
      p[j] = expf(score(c0 + j) - mx);
      sum += p[j];
    }
    __syncthreads();
    if (threadIdx.x < D)
      for (int j = 0; j < len; j++) acc += p[j] * v[(size_t)(c0 + j) * KV + (size_t)kvh * D + threadIdx.x];
  }
  sum = block_sum(sum);
  if (threadIdx.x < D) att[(size_t)i * H * D + (size_t)h * D + threadIdx.x] = acc / sum;
}

}  // namespace

void cached_attention(float* att, const float* q, const float* k, const float* v, int start, int n, int H, int KVH,
                      int D, cudaStream_t stream) {
  require(n > 0 && start >= 0 && H > 0 && KVH > 0 && H % KVH == 0 && D > 0 && D <= kBlock, "cached_attention",
          "bad shape: start ", start, ", n ", n, ", heads ", H, "/", KVH, ", head dim ", D, " (at most ", kBlock, ")");
  require(att && q && k && v, "cached_attention", "null pointer");
  launch<cached_attention_kernel>((unsigned)(n * H), kBlock, 0, stream, att, q, k, v, start, H, KVH, D,
                                  (float)(1.0 / std::sqrt((double)D)));
  CUDA_LAUNCH_CHECK("cached_attention");
}

}  // namespace rt::cuda
