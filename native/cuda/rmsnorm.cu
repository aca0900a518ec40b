#include "rmsnorm.cuh"

namespace rt::cuda {
namespace {

constexpr int kRowsPerBlock = 8;  // one warp per row

// out16 (nullable): the output rounded to bf16 as well, for a GEMM that reads bf16 operands next.
template <typename T>
__global__ void rmsnorm_forward_kernel(T* out, bf16* out16, float* rstd, const T* inp, const T* w, int N, int C,
                                       float eps) {
  const int n = blockIdx.x * kRowsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (n >= N) return;
  const T* x = inp + (size_t)n * C;
  float ss = 0;
  for (int c = lane; c < C; c += 32) {
    const float v = to_f(x[c]);
    ss += v * v;
  }
  ss = warp_sum(ss);
  const float r = rsqrtf(ss / C + eps);
  if (lane == 0) rstd[n] = r;
  T* y = out + (size_t)n * C;
  for (int c = lane; c < C; c += 32) {
    const float v = to_f(x[c]) * r * to_f(w[c]);
    y[c] = from_f<T>(v);
    if (out16) out16[(size_t)n * C + c] = __float2bfloat16_rn(v);
  }
}

template <typename T>
__global__ void rmsnorm_dinp_kernel(T* dinp, const T* dout, const T* inp, const T* w, const float* rstd, int N, int C) {
  const int n = blockIdx.x * kRowsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (n >= N) return;
  const T* x = inp + (size_t)n * C;
  const T* dy = dout + (size_t)n * C;
  float dot = 0;
  for (int c = lane; c < C; c += 32) dot += to_f(dy[c]) * to_f(w[c]) * to_f(x[c]);
  dot = warp_sum(dot);
  const float r = rstd[n];
  const float k = dot * r * r * r / C;
  T* dx = dinp + (size_t)n * C;
  for (int c = lane; c < C; c += 32) dx[c] = from_f<T>(to_f(dy[c]) * to_f(w[c]) * r - to_f(x[c]) * k);
}

// Block (32, 8): 32 channels, 8 row lanes over a chunk of rows; the chunk's sum is added to dw.
constexpr int kDwRows = 256;
template <typename T>
__global__ void rmsnorm_dw_kernel(float* dw, const T* dout, const T* inp, const float* rstd, int N, int C) {
  __shared__ float part[8][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  const int n0 = blockIdx.y * kDwRows, n1 = min(N, n0 + kDwRows);
  float acc = 0;
  if (c < C)
    for (int n = n0 + threadIdx.y; n < n1; n += 8)
      acc += to_f(dout[(size_t)n * C + c]) * to_f(inp[(size_t)n * C + c]) * rstd[n];
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float s = 0;
    for (int i = 0; i < 8; i++) s += part[i][threadIdx.x];
    atomicAdd(&dw[c], s);
  }
}

}  // namespace

template <typename T>
void rmsnorm_forward(T* out, float* rstd, const T* inp, const T* w, int N, int C, double eps, cudaStream_t stream,
                     bf16* out16) {
  require(N > 0 && C > 0 && out && rstd && inp && w, "rmsnorm_forward", "bad shape N=", N, " C=", C);
  launch<rmsnorm_forward_kernel<T>>(grid_for(N, kRowsPerBlock), 32 * kRowsPerBlock, 0, stream, out, out16, rstd, inp, w,
                                    N, C, (float)eps);
  CUDA_LAUNCH_CHECK("rmsnorm_forward");
}

template <typename T>
void rmsnorm_backward(T* dinp, float* dw, const T* dout, const T* inp, const T* w, const float* rstd, int N, int C,
                      cudaStream_t stream) {
  require(N > 0 && C > 0 && dinp && dout && inp && w && rstd, "rmsnorm_backward", "bad shape N=", N, " C=", C);
  require((const void*)dinp != (const void*)inp, "rmsnorm_backward", "dinp must not alias inp");
  // dw first: dinp may alias dout
  if (dw) {
    launch<rmsnorm_dw_kernel<T>>(dim3(grid_for(C, 32), grid_for(N, kDwRows)), dim3(32, 8), 0, stream, dw, dout, inp,
                                 rstd, N, C);
    CUDA_LAUNCH_CHECK("rmsnorm_backward (dw)");
  }
  launch<rmsnorm_dinp_kernel<T>>(grid_for(N, kRowsPerBlock), 32 * kRowsPerBlock, 0, stream, dinp, dout, inp, w, rstd, N,
                                 C);
  CUDA_LAUNCH_CHECK("rmsnorm_backward (dinp)");
}

#define RT_INSTANTIATE(T)                                                                                  \
  template void rmsnorm_forward<T>(T*, float*, const T*, const T*, int, int, double, cudaStream_t, bf16*); \
  template void rmsnorm_backward<T>(T*, float*, const T*, const T*, const T*, const float*, int, int, cudaStream_t);
RT_INSTANTIATE(float)
RT_INSTANTIATE(bf16)

}  // namespace rt::cuda
