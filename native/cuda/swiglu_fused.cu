// One thread per pack of K elements of the (N, F) activations: K = 4 floats or 8 bf16 (128-bit loads and stores)
// when F is a whole number of packs and every base is 16-byte aligned, so no pack crosses a row of the stacked
// (N, 2F) matrix; otherwise K = 1 (an odd F, sub-pointers at odd offsets).
#include "swiglu_fused.cuh"
#include "swiglu_math.cuh"
#include "vector_io.cuh"

namespace rt::cuda {
namespace {

template <typename T, int K>
__global__ void split_swiglu_kernel(T* gate, T* up, T* h, bf16* h16, const T* packed, int N, int F) {
  const size_t i0 = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * K;
  if (i0 >= (size_t)N * F) return;
  const size_t n = i0 / F, c = i0 % F;
  const T* row = packed + n * 2 * F;
  if constexpr (K > 1) {
    float g[K], u[K], o[K];
    load_pack(g, row + c);
    load_pack(u, row + F + c);
    for (int e = 0; e < K; e++) o[e] = swiglu_value(g[e], u[e]);
    copy16(gate + i0, row + c);
    copy16(up + i0, row + F + c);
    store_pack(h + i0, o);
    if (h16) store_rounded(h16 + i0, o);
  } else {
    const float g = to_f(row[c]), u = to_f(row[F + c]), o = swiglu_value(g, u);
    gate[i0] = row[c];
    up[i0] = row[F + c];
    h[i0] = from_f<T>(o);
    if (h16) h16[i0] = __float2bfloat16_rn(o);
  }
}

template <typename T, int K>
__global__ void swiglu_backward_stacked_kernel(T* packed, bf16* packed16, const T* dh, const T* gate, const T* up,
                                               int N, int F) {
  const size_t i0 = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * K;
  if (i0 >= (size_t)N * F) return;
  const size_t n = i0 / F, c = i0 % F, at = n * 2 * F + c;
  float g[K], u[K], d[K], dg[K], du[K];
  if constexpr (K > 1) {
    load_pack(g, gate + i0);
    load_pack(u, up + i0);
    load_pack(d, dh + i0);
  } else {
    g[0] = to_f(gate[i0]), u[0] = to_f(up[i0]), d[0] = to_f(dh[i0]);
  }
  for (int e = 0; e < K; e++) swiglu_gradient(dg[e], du[e], d[e], g[e], u[e]);
  if constexpr (K > 1) {
    if (packed) store_pack(packed + at, dg), store_pack(packed + at + F, du);
    if (packed16) store_rounded(packed16 + at, dg), store_rounded(packed16 + at + F, du);
  } else {
    if (packed) packed[at] = from_f<T>(dg[0]), packed[at + F] = from_f<T>(du[0]);
    if (packed16) packed16[at] = __float2bfloat16_rn(dg[0]), packed16[at + F] = __float2bfloat16_rn(du[0]);
  }
}

// Whether the (N, F) tensors and the (N, 2F) stacked one may be walked in packs of pack_size<T>().
template <typename T>
bool packs_fit(int F, std::initializer_list<const void*> bases) {
  if (F % pack_size<T>() != 0) return false;
  for (const void* p : bases)
    if (p && !aligned16(p)) return false;
  return true;
}

}  // namespace

template <typename T>
void split_swiglu_forward(T* gate, T* up, T* h, bf16* h16, const T* packed, int N, int F, cudaStream_t stream) {
  require(N > 0 && F > 0 && gate && up && h && packed, "split_swiglu_forward", "bad shape N=", N, " F=", F);
  constexpr int K = pack_size<T>();
  const size_t n = (size_t)N * F;
  if (packs_fit<T>(F, {gate, up, h, h16, packed}))
    launch<split_swiglu_kernel<T, K>>(grid_for(n / K, 256), 256, 0, stream, gate, up, h, h16, packed, N, F);
  else launch<split_swiglu_kernel<T, 1>>(grid_for(n, 256), 256, 0, stream, gate, up, h, h16, packed, N, F);
  CUDA_LAUNCH_CHECK("split_swiglu_forward");
}

template <typename T>
void swiglu_backward_stacked(T* packed, bf16* packed16, const T* dh, const T* gate, const T* up, int N, int F,
                             cudaStream_t stream) {
  require(N > 0 && F > 0 && (packed || packed16) && dh && gate && up, "swiglu_backward_stacked", "bad shape N=", N,
          " F=", F);
  constexpr int K = pack_size<T>();
  const size_t n = (size_t)N * F;
  if (packs_fit<T>(F, {packed, packed16, dh, gate, up}))
    launch<swiglu_backward_stacked_kernel<T, K>>(grid_for(n / K, 256), 256, 0, stream, packed, packed16, dh, gate, up,
                                                 N, F);
  else
    launch<swiglu_backward_stacked_kernel<T, 1>>(grid_for(n, 256), 256, 0, stream, packed, packed16, dh, gate, up, N,
                                                 F);
  CUDA_LAUNCH_CHECK("swiglu_backward_stacked");
}

template void split_swiglu_forward<float>(float*, float*, float*, bf16*, const float*, int, int, cudaStream_t);
template void split_swiglu_forward<bf16>(bf16*, bf16*, bf16*, bf16*, const bf16*, int, int, cudaStream_t);
template void swiglu_backward_stacked<float>(float*, bf16*, const float*, const float*, const float*, int, int,
                                             cudaStream_t);
template void swiglu_backward_stacked<bf16>(bf16*, bf16*, const bf16*, const bf16*, const bf16*, int, int,
                                            cudaStream_t);

}  // namespace rt::cuda
