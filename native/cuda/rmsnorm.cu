#include "rmsnorm.cuh"
#include "vector_io.cuh"

namespace rt::cuda {
namespace {

constexpr int kRowsPerBlock = 8;  // one warp per row

// A warp per row, each lane K consecutive channels at a time: K = a 128-bit pack when the rows are whole packs and
// every tensor is 16-byte aligned, else 1. (The sums of a row then add in another order than with K = 1: last-bit
// differences, inside the op tests' 1e-5.) out16 (nullable): the output rounded to bf16 as well, for a GEMM
// that reads bf16 operands next (with K = 4 floats it takes 8-byte stores).
template <typename T, int K>
__global__ void rmsnorm_forward_kernel(T* out, bf16* out16, float* rstd, const T* inp, const T* w, int N, int C,
                                       float eps) {
  const int n = blockIdx.x * kRowsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (n >= N) return;
  const T* x = inp + (size_t)n * C;
  float ss = 0;
  for (int c = lane * K; c < C; c += 32 * K) {
    float v[K];
    load_k<T, K>(v, x + c);
    for (int e = 0; e < K; e++) ss += v[e] * v[e];
  }
  ss = warp_sum(ss);
  const float r = rsqrtf(ss / C + eps);
  if (lane == 0) rstd[n] = r;
  T* y = out + (size_t)n * C;
  for (int c = lane * K; c < C; c += 32 * K) {
    float v[K], g[K];
    load_k<T, K>(v, x + c);
    load_k<T, K>(g, w + c);
    for (int e = 0; e < K; e++) v[e] = v[e] * r * g[e];
    store_k<T, K>(y + c, v);
    if (out16) store_rounded_k<K>(out16 + (size_t)n * C + c, v);
  }
}

template <typename T, int K>
__global__ void rmsnorm_dinp_kernel(T* dinp, const T* dout, const T* inp, const T* w, const float* rstd, int N, int C) {
  const int n = blockIdx.x * kRowsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (n >= N) return;
  const T* x = inp + (size_t)n * C;
  const T* dy = dout + (size_t)n * C;
  float dot = 0;
  for (int c = lane * K; c < C; c += 32 * K) {
    float a[K], b[K], g[K];
    load_k<T, K>(a, dy + c);
    load_k<T, K>(g, w + c);
    load_k<T, K>(b, x + c);
    for (int e = 0; e < K; e++) dot += a[e] * g[e] * b[e];
  }
  dot = warp_sum(dot);
  const float r = rstd[n];
  const float k = dot * r * r * r / C;
  T* dx = dinp + (size_t)n * C;
  for (int c = lane * K; c < C; c += 32 * K) {
    float a[K], b[K], g[K];
    load_k<T, K>(a, dy + c);
    load_k<T, K>(g, w + c);
    load_k<T, K>(b, x + c);
    for (int e = 0; e < K; e++) a[e] = a[e] * g[e] * r - b[e] * k;
    store_k<T, K>(dx + c, a);
  }
}

// Whether rows of C elements of T at each base may be walked in packs.
template <typename T>
bool rows_in_packs(int C, std::initializer_list<const void*> bases) {
  for (const void* p : bases)
    if (p && !rows_aligned16<T>(p, C)) return false;
  return true;
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
  constexpr int K = pack_size<T>();
  if (rows_in_packs<T>(C, {out, inp, w}) && (!out16 || rows_aligned16<bf16>(out16, C)))
    launch<rmsnorm_forward_kernel<T, K>>(grid_for(N, kRowsPerBlock), 32 * kRowsPerBlock, 0, stream, out, out16, rstd,
                                         inp, w, N, C, (float)eps);
  else
    launch<rmsnorm_forward_kernel<T, 1>>(grid_for(N, kRowsPerBlock), 32 * kRowsPerBlock, 0, stream, out, out16, rstd,
                                         inp, w, N, C, (float)eps);
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
  if (rows_in_packs<T>(C, {dinp, dout, inp, w}))
    launch<rmsnorm_dinp_kernel<T, pack_size<T>()>>(grid_for(N, kRowsPerBlock), 32 * kRowsPerBlock, 0, stream, dinp,
                                                   dout, inp, w, rstd, N, C);
  else
    launch<rmsnorm_dinp_kernel<T, 1>>(grid_for(N, kRowsPerBlock), 32 * kRowsPerBlock, 0, stream, dinp, dout, inp, w,
                                      rstd, N, C);
  CUDA_LAUNCH_CHECK("rmsnorm_backward (dinp)");
}

#define RT_INSTANTIATE(T)                                                                                  \
  template void rmsnorm_forward<T>(T*, float*, const T*, const T*, int, int, double, cudaStream_t, bf16*); \
  template void rmsnorm_backward<T>(T*, float*, const T*, const T*, const T*, const float*, int, int, cudaStream_t);
RT_INSTANTIATE(float)
RT_INSTANTIATE(bf16)

}  // namespace rt::cuda
