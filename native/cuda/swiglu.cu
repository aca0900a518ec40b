#include "swiglu.cuh"

namespace rt::cuda {
namespace {

template <typename T>
__global__ void swiglu_forward_kernel(T* h, const T* gate, const T* up, size_t n) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = to_f(gate[i]);
  h[i] = from_f<T>(g / (1.f + expf(-g)) * to_f(up[i]));
}

template <typename T>
__global__ void swiglu_backward_kernel(T* dgate, T* dup, const T* dh, const T* gate, const T* up, size_t n) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = to_f(gate[i]), u = to_f(up[i]), d = to_f(dh[i]);
  const float s = 1.f / (1.f + expf(-g));
  dup[i] = from_f<T>(d * g * s);
  dgate[i] = from_f<T>(d * u * s * (1.f + g * (1.f - s)));
}

}  // namespace

template <typename T>
void swiglu_forward(T* h, const T* gate, const T* up, size_t n, cudaStream_t stream) {
  require(n > 0 && h && gate && up, "swiglu_forward", "bad size n=", n);
  launch<swiglu_forward_kernel<T>>(grid_for(n, 256), 256, 0, stream, h, gate, up, n);
  CUDA_LAUNCH_CHECK("swiglu_forward");
}

template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dh, const T* gate, const T* up, size_t n, cudaStream_t stream) {
  require(n > 0 && dgate && dup && dh && gate && up, "swiglu_backward", "bad size n=", n);
  launch<swiglu_backward_kernel<T>>(grid_for(n, 256), 256, 0, stream, dgate, dup, dh, gate, up, n);
  CUDA_LAUNCH_CHECK("swiglu_backward");
}

template void swiglu_forward<float>(float*, const float*, const float*, size_t, cudaStream_t);
template void swiglu_forward<bf16>(bf16*, const bf16*, const bf16*, size_t, cudaStream_t);
template void swiglu_backward<float>(float*, float*, const float*, const float*, const float*, size_t, cudaStream_t);
template void swiglu_backward<bf16>(bf16*, bf16*, const bf16*, const bf16*, const bf16*, size_t, cudaStream_t);

}  // namespace rt::cuda
