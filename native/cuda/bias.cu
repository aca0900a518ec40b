#include "bias.cuh"

namespace rt::cuda {
namespace {

template <typename T>
__global__ void bias_add_kernel(T* out, const T* b, size_t total, int O) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < total) out[i] = from_f<T>(to_f(out[i]) + to_f(b[i % O]));
}

// A block of 32 x 8 threads per 32 output columns: each column's rows are split over the block's 8 rows of
// threads (reads coalesced across a warp's columns), and the 8 partial sums are added in a fixed order, so the
// result is the same bits on every run (no atomics) and a long N is summed by 8 threads, not one.
constexpr int kBiasCols = 32, kBiasRows = 8;

template <typename T>
__global__ void bias_grad_kernel(float* db, const T* dout, int N, int O) {
  __shared__ float part[kBiasRows][kBiasCols + 1];
  const int o = blockIdx.x * kBiasCols + threadIdx.x;
  float acc = 0.f;
  if (o < O)
    for (int n = threadIdx.y; n < N; n += kBiasRows) acc += to_f(dout[(size_t)n * O + o]);
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y != 0 || o >= O) return;
  float sum = 0.f;
  for (int r = 0; r < kBiasRows; r++) sum += part[r][threadIdx.x];
  db[o] += sum;
}

__global__ void fill_kernel(float* p, size_t n, float value) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) p[i] = value;
}

}  // namespace

template <typename T>
void bias_add(T* out, const T* b, int N, int O, cudaStream_t stream) {
  require(N > 0 && O > 0 && out && b, "bias_add", "bad shape N=", N, " O=", O);
  const size_t total = (size_t)N * O;
  launch<bias_add_kernel<T>>(grid_for(total, 256), 256, 0, stream, out, b, total, O);
  CUDA_LAUNCH_CHECK("bias_add");
}

template <typename T>
void bias_grad(float* db, const T* dout, int N, int O, cudaStream_t stream) {
  require(N > 0 && O > 0 && db && dout, "bias_grad", "bad shape N=", N, " O=", O);
  launch<bias_grad_kernel<T>>(grid_for(O, kBiasCols), dim3(kBiasCols, kBiasRows), 0, stream, db, dout, N, O);
  CUDA_LAUNCH_CHECK("bias_grad");
}

void fill(float* p, size_t n, float value, cudaStream_t stream) {
  if (n == 0) return;
  require(p != nullptr, "fill", "null pointer");
  launch<fill_kernel>(grid_for(n, 256), 256, 0, stream, p, n, value);
  CUDA_LAUNCH_CHECK("fill");
}

template void bias_add<float>(float*, const float*, int, int, cudaStream_t);
template void bias_add<bf16>(bf16*, const bf16*, int, int, cudaStream_t);
template void bias_grad<float>(float*, const float*, int, int, cudaStream_t);
template void bias_grad<bf16>(float*, const bf16*, int, int, cudaStream_t);

}  // namespace rt::cuda
