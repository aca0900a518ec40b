#include "bf16_base.cuh"

namespace rt::cuda {
namespace {

__device__ __forceinline__ float bf16_bits_to_float(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }

__device__ __forceinline__ uint16_t float_to_bf16_bits(float f) {
  const uint32_t bits = __float_as_uint(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x0040u);  // stay a (quiet) NaN
  return (uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);                    // ties to even
}

__global__ void widen_bf16_kernel(float* dst, const uint16_t* src, size_t n) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = bf16_bits_to_float(src[i]);
}

__global__ void round_to_bf16_kernel(uint16_t* dst, const float* src, size_t n) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = float_to_bf16_bits(src[i]);
}

__global__ void embedding_forward_bf16_kernel(float* out, const int32_t* ids, const uint16_t* wte, int C, int V,
                                              int* bad) {
  const int n = blockIdx.x;
  const int id = ids[n];
  const bool ok = id >= 0 && id < V;
  if (!ok && threadIdx.x == 0 && bad) atomicMin(bad, n);
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    out[(size_t)n * C + c] = ok ? bf16_bits_to_float(wte[(size_t)id * C + c]) : 0.f;
}

}  // namespace

void widen_bf16(float* dst, const uint16_t* src, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  require(dst && src, "widen_bf16", "null pointer for n=", n);
  launch<widen_bf16_kernel>(grid_for(n, 256), 256, 0, stream, dst, src, n);
  CUDA_LAUNCH_CHECK("widen_bf16");
}

void round_to_bf16(uint16_t* dst, const float* src, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  require(dst && src, "round_to_bf16", "null pointer for n=", n);
  launch<round_to_bf16_kernel>(grid_for(n, 256), 256, 0, stream, dst, src, n);
  CUDA_LAUNCH_CHECK("round_to_bf16");
}

void embedding_forward_bf16(float* out, const int32_t* ids, const uint16_t* wte, int N, int C, int V, int* bad,
                            cudaStream_t stream) {
  require(N > 0 && C > 0 && V > 0 && out && ids && wte, "embedding_forward_bf16", "bad shape N=", N, " C=", C,
          " V=", V);
  launch<embedding_forward_bf16_kernel>(N, 256, 0, stream, out, ids, wte, C, V, bad);
  CUDA_LAUNCH_CHECK("embedding_forward_bf16");
}

}  // namespace rt::cuda
