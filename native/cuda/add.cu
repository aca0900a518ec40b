// Elementwise sums, a 128-bit pack of each tensor per thread where all are 16-byte aligned (as swiglu.cu).
#include "add.cuh"
#include "vector_io.cuh"

namespace rt::cuda {
namespace {

template <typename T, int K>
__global__ void add_kernel(T* out, const T* a, const T* b, size_t n) {
  const size_t i0 = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * K;
  if (i0 >= n) return;
  if constexpr (K > 1) {
    if (i0 + K <= n) {
      float x[K], y[K];
      load_pack(x, a + i0);
      load_pack(y, b + i0);
      for (int e = 0; e < K; e++) x[e] += y[e];
      store_pack(out + i0, x);
      return;
    }
  }
  for (size_t i = i0; i < n && i < i0 + K; i++) out[i] = from_f<T>(to_f(a[i]) + to_f(b[i]));
}

template <typename T>
void launch_add(T* out, const T* a, const T* b, size_t n, cudaStream_t stream) {
  constexpr int K = pack_size<T>();
  if (aligned16(out) && aligned16(a) && aligned16(b))
    launch<add_kernel<T, K>>(grid_for((n + K - 1) / K, 256), 256, 0, stream, out, a, b, n);
  else launch<add_kernel<T, 1>>(grid_for(n, 256), 256, 0, stream, out, a, b, n);
}

}  // namespace

template <typename T>
void add(T* out, const T* a, const T* b, size_t n, cudaStream_t stream) {
  require(n > 0 && out && a && b, "add", "bad size n=", n);
  launch_add(out, a, b, n, stream);
  CUDA_LAUNCH_CHECK("add");
}

template <typename T>
void add_inplace(T* acc, const T* x, size_t n, cudaStream_t stream) {
  require(n > 0 && acc && x, "add_inplace", "bad size n=", n);
  launch_add(acc, acc, x, n, stream);
  CUDA_LAUNCH_CHECK("add_inplace");
}

template void add<float>(float*, const float*, const float*, size_t, cudaStream_t);
template void add<bf16>(bf16*, const bf16*, const bf16*, size_t, cudaStream_t);
template void add_inplace<float>(float*, const float*, size_t, cudaStream_t);
template void add_inplace<bf16>(bf16*, const bf16*, size_t, cudaStream_t);

}  // namespace rt::cuda
