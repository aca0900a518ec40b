#include "embedding.cuh"
#include "vector_io.cuh"

namespace rt::cuda {
namespace {

// One block per row; K elements per thread step: K = a 128-bit pack when C is a whole number of packs and both
// tables are 16-byte aligned, else 1.
template <typename T, int K>
__global__ void embedding_forward_kernel(T* out, const int32_t* ids, const T* wte, int N, int C, int V, int* bad) {
  const int n = blockIdx.x;
  const int id = ids[n];
  const bool ok = id >= 0 && id < V;
  if (!ok && threadIdx.x == 0 && bad) atomicMin(bad, n);
  T* row = out + (size_t)n * C;
  const T* from = wte + (size_t)(ok ? id : 0) * C;
  for (int c = threadIdx.x * K; c < C; c += blockDim.x * K) {
    if constexpr (K > 1) {
      if (ok) copy16(row + c, from + c);
      else zero16(row + c);
    } else {
      row[c] = ok ? from[c] : from_f<T>(0.f);
    }
  }
}

template <typename T>
__global__ void embedding_backward_kernel(float* dwte, const T* dout, const int32_t* ids, int N, int C, int V) {
  const int n = blockIdx.x;
  const int id = ids[n];
  if (id < 0 || id >= V) return;
  for (int c = threadIdx.x; c < C; c += blockDim.x) atomicAdd(&dwte[(size_t)id * C + c], to_f(dout[(size_t)n * C + c]));
}

}  // namespace

template <typename T>
void embedding_forward(T* out, const int32_t* ids, const T* wte, int N, int C, int V, int* bad, cudaStream_t stream) {
  require(N > 0 && C > 0 && V > 0 && out && ids && wte, "embedding_forward", "bad shape N=", N, " C=", C, " V=", V);
  if (rows_aligned16<T>(out, C) && rows_aligned16<T>(wte, C))
    launch<embedding_forward_kernel<T, pack_size<T>()>>(N, 256, 0, stream, out, ids, wte, N, C, V, bad);
  else launch<embedding_forward_kernel<T, 1>>(N, 256, 0, stream, out, ids, wte, N, C, V, bad);
  CUDA_LAUNCH_CHECK("embedding_forward");
}

template <typename T>
void embedding_backward(float* dwte, const T* dout, const int32_t* ids, int N, int C, int V, cudaStream_t stream) {
  require(N > 0 && C > 0 && V > 0 && dwte && dout && ids, "embedding_backward", "bad shape N=", N, " C=", C, " V=", V);
  launch<embedding_backward_kernel<T>>(N, 256, 0, stream, dwte, dout, ids, N, C, V);
  CUDA_LAUNCH_CHECK("embedding_backward");
}

template void embedding_forward<float>(float*, const int32_t*, const float*, int, int, int, int*, cudaStream_t);
template void embedding_forward<bf16>(bf16*, const int32_t*, const bf16*, int, int, int, int*, cudaStream_t);
template void embedding_backward<float>(float*, const float*, const int32_t*, int, int, int, cudaStream_t);
template void embedding_backward<bf16>(float*, const bf16*, const int32_t*, int, int, int, cudaStream_t);

}  // namespace rt::cuda
