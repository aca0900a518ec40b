#include "bias.cuh"

namespace rt::cuda {
namespace {

template <typename T>
__global__ void bias_add_kernel(T* out, const T* b, size_t total, int O) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < total) out[i] = from_f<T>(to_f(out[i]) + to_f(b[i % O]));
}

// One thread per output column: the rows are read with a stride of O, coalesced across the warp's columns.
__global__ void bias_grad_kernel(float* db, const float* dout, int N, int O) {
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= O) return;
  float acc = 0.f;
  for (int n = 0; n < N; n++) acc += dout[(size_t)n * O + o];
  db[o] += acc;
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

void bias_grad(float* db, const float* dout, int N, int O, cudaStream_t stream) {
  require(N > 0 && O > 0 && db && dout, "bias_grad", "bad shape N=", N, " O=", O);
  launch<bias_grad_kernel>(grid_for(O, 128), 128, 0, stream, db, dout, N, O);
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

}  // namespace rt::cuda
