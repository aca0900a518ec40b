#include "cross_entropy.cuh"
#include "ignore_index.h"

namespace rt::cuda {
namespace {

constexpr int kThreads = 512;

// Merges two (max, sum of exp(z - max)) pairs.
__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
  const float mx = fmaxf(m, m2);
  s = (m == -INFINITY ? 0.f : s * expf(m - mx)) + (m2 == -INFINITY ? 0.f : s2 * expf(m2 - mx));
  m = mx;
}

template <typename T>
__global__ void cross_entropy_kernel(float* losses, T* dlogits, const T* logits, const int32_t* labels, int V,
                                     float scale, double* loss_sum, int* bad, const float* weights, int* targets) {
  const int n = blockIdx.x;
  const int y = labels[n];
  const T* z = logits + (size_t)n * V;
  T* dz = dlogits ? dlogits + (size_t)n * V : nullptr;
  if (y == kIgnoreIndex || y < 0 || y >= V) {
    if (y != kIgnoreIndex && threadIdx.x == 0 && bad) atomicMin(bad, n);
    if (threadIdx.x == 0) losses[n] = 0.f;
    if (dz)
      for (int v = threadIdx.x; v < V; v += blockDim.x) dz[v] = from_f<T>(0.f);
    return;
  }
  // pass 1: online max and sum of exp over this thread's strided chunk of the vocabulary
  float m = -INFINITY, s = 0.f;
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    const float x = to_f(z[v]);
    if (x > m) {
      s = (m == -INFINITY ? 0.f : s * expf(m - x)) + 1.f;
      m = x;
    } else if (x > -INFINITY) {  // a -inf logit adds nothing (and exp(-inf - -inf) would be NaN)
      s += expf(x - m);
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    merge(m, s, m2, s2);
  }
  __shared__ float wm[32], ws[32];
  __shared__ float zy_shared;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  if (lane == 0) {
    wm[warp] = m;
    ws[warp] = s;
  }
  if (threadIdx.x == 0) zy_shared = to_f(z[y]);  // read before a possibly aliased write
  __syncthreads();
  m = lane < warps ? wm[lane] : -INFINITY;
  s = lane < warps ? ws[lane] : 0.f;
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    merge(m, s, m2, s2);
  }
  const float lse = m + logf(s);
  const float zy = zy_shared;
  if (threadIdx.x == 0) {
    const float loss = lse - zy;
    losses[n] = loss;
    if (loss_sum) atomicAdd(loss_sum, (double)loss);
    if (targets) atomicAdd(targets, 1);
  }
  if (!dz) return;
  __syncthreads();  // every thread has read z[y] before anyone writes dz (aliasing)
  // pass 2: the gradient, one chunk at a time
  const float k = weights ? scale * weights[n] : scale;
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    const float p = expf(to_f(z[v]) - lse);
    dz[v] = from_f<T>(k * (p - (v == y ? 1.f : 0.f)));
  }
}

__global__ void count_targets_kernel(int* count, const int32_t* labels, int N) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  const bool target = n < N && labels[n] != kIgnoreIndex;
  const unsigned votes = __ballot_sync(0xffffffffu, target);
  if (threadIdx.x % 32 == 0 && votes) atomicAdd(count, __popc(votes));
}

}  // namespace

void count_targets(int* count, const int32_t* labels, int N, cudaStream_t stream) {
  require(N > 0 && count && labels, "count_targets", "bad shape N=", N);
  launch<count_targets_kernel>(grid_for(N, 256), 256, 0, stream, count, labels, N);
  CUDA_LAUNCH_CHECK("count_targets");
}

template <typename T>
void cross_entropy_forward_backward(float* losses, T* dlogits, const T* logits, const int32_t* labels, int N, int V,
                                    float scale, double* loss_sum, int* bad, cudaStream_t stream, const float* weights,
                                    int* targets) {
  require(N > 0 && V > 0 && losses && logits && labels, "cross_entropy", "bad shape N=", N, " V=", V);
  launch<cross_entropy_kernel<T>>(N, kThreads, 0, stream, losses, dlogits, logits, labels, V, scale, loss_sum, bad,
                                  weights, targets);
  CUDA_LAUNCH_CHECK("cross_entropy");
}

template void cross_entropy_forward_backward<float>(float*, float*, const float*, const int32_t*, int, int, float,
                                                    double*, int*, cudaStream_t, const float*, int*);
template void cross_entropy_forward_backward<bf16>(float*, bf16*, const bf16*, const int32_t*, int, int, float, double*,
                                                   int*, cudaStream_t, const float*, int*);

}  // namespace rt::cuda
