#include "add.cuh"

namespace rt::cuda {
namespace {

template <typename T>
__global__ void add_kernel(T* out, const T* a, const T* b, size_t n) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = from_f<T>(to_f(a[i]) + to_f(b[i]));
}

}  // namespace

template <typename T>
void add(T* out, const T* a, const T* b, size_t n, cudaStream_t stream) {
  require(n > 0 && out && a && b, "add", "bad size n=", n);
  launch<add_kernel<T>>(grid_for(n, 256), 256, 0, stream, out, a, b, n);
  CUDA_LAUNCH_CHECK("add");
}

template <typename T>
void add_inplace(T* acc, const T* x, size_t n, cudaStream_t stream) {
  require(n > 0 && acc && x, "add_inplace", "bad size n=", n);
  launch<add_kernel<T>>(grid_for(n, 256), 256, 0, stream, acc, acc, x, n);
  CUDA_LAUNCH_CHECK("add_inplace");
}

template void add<float>(float*, const float*, const float*, size_t, cudaStream_t);
template void add<bf16>(bf16*, const bf16*, const bf16*, size_t, cudaStream_t);
template void add_inplace<float>(float*, const float*, size_t, cudaStream_t);
template void add_inplace<bf16>(bf16*, const bf16*, size_t, cudaStream_t);

}  // namespace rt::cuda
