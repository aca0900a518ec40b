// Elementwise SwiGLU. Where every tensor is 16-byte aligned a thread takes a 128-bit pack of each (8 bf16 or
// 4 floats: one load instruction per tensor instead of 8 or 4); otherwise, and for the tail past the last
// whole pack, one element at a time. The math per element is the same either way, so both give equal bits.
#include "swiglu.cuh"
#include "swiglu_math.cuh"
#include "vector_io.cuh"

namespace rt::cuda {
namespace {

template <typename T, int K>
__global__ void swiglu_forward_kernel(T* h, bf16* h16, const T* gate, const T* up, size_t n) {
  const size_t i0 = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * K;
  if (i0 >= n) return;
  if constexpr (K > 1) {
    if (i0 + K <= n) {
      float g[K], u[K], o[K];
      load_pack(g, gate + i0);
      load_pack(u, up + i0);
      for (int e = 0; e < K; e++) o[e] = swiglu_value(g[e], u[e]);
      store_pack(h + i0, o);
      if (h16) store_rounded(h16 + i0, o);
      return;
    }
  }
  for (size_t i = i0; i < n && i < i0 + K; i++) {
    const float o = swiglu_value(to_f(gate[i]), to_f(up[i]));
    h[i] = from_f<T>(o);
    if (h16) h16[i] = __float2bfloat16_rn(o);
  }
}

template <typename T, int K>
__global__ void swiglu_backward_kernel(T* dgate, T* dup, const T* dh, const T* gate, const T* up, size_t n) {
  const size_t i0 = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * K;
  if (i0 >= n) return;
  if constexpr (K > 1) {
    if (i0 + K <= n) {  // every input is read before dgate (which may alias dh) is written
      float g[K], u[K], d[K], dg[K], du[K];
      load_pack(g, gate + i0);
      load_pack(u, up + i0);
      load_pack(d, dh + i0);
      for (int e = 0; e < K; e++) swiglu_gradient(dg[e], du[e], d[e], g[e], u[e]);
      store_pack(dup + i0, du);
      store_pack(dgate + i0, dg);
      return;
    }
  }
  for (size_t i = i0; i < n && i < i0 + K; i++) {
    float dg, du;
    swiglu_gradient(dg, du, to_f(dh[i]), to_f(gate[i]), to_f(up[i]));
    dup[i] = from_f<T>(du);
    dgate[i] = from_f<T>(dg);
  }
}

}  // namespace

template <typename T>
void swiglu_forward(T* h, const T* gate, const T* up, size_t n, cudaStream_t stream, bf16* h16) {
  require(n > 0 && h && gate && up, "swiglu_forward", "bad size n=", n);
  constexpr int K = pack_size<T>();
  if (aligned16(h) && aligned16(gate) && aligned16(up) && (!h16 || aligned16(h16)))
    launch<swiglu_forward_kernel<T, K>>(grid_for((n + K - 1) / K, 256), 256, 0, stream, h, h16, gate, up, n);
  else launch<swiglu_forward_kernel<T, 1>>(grid_for(n, 256), 256, 0, stream, h, h16, gate, up, n);
  CUDA_LAUNCH_CHECK("swiglu_forward");
}

template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dh, const T* gate, const T* up, size_t n, cudaStream_t stream) {
  require(n > 0 && dgate && dup && dh && gate && up, "swiglu_backward", "bad size n=", n);
  constexpr int K = pack_size<T>();
  if (aligned16(dgate) && aligned16(dup) && aligned16(dh) && aligned16(gate) && aligned16(up))
    launch<swiglu_backward_kernel<T, K>>(grid_for((n + K - 1) / K, 256), 256, 0, stream, dgate, dup, dh, gate, up, n);
  else launch<swiglu_backward_kernel<T, 1>>(grid_for(n, 256), 256, 0, stream, dgate, dup, dh, gate, up, n);
  CUDA_LAUNCH_CHECK("swiglu_backward");
}

template void swiglu_forward<float>(float*, const float*, const float*, size_t, cudaStream_t, bf16*);
template void swiglu_forward<bf16>(bf16*, const bf16*, const bf16*, size_t, cudaStream_t, bf16*);
template void swiglu_backward<float>(float*, float*, const float*, const float*, const float*, size_t, cudaStream_t);
template void swiglu_backward<bf16>(bf16*, bf16*, const bf16*, const bf16*, const bf16*, size_t, cudaStream_t);

}  // namespace rt::cuda
