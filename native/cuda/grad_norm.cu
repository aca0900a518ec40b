#include "grad_norm.cuh"

namespace rt::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kPerThread = 16;  // elements per thread per block: 8192 per block

__global__ void sum_of_squares_kernel(double* sumsq, const float* x, size_t n) {
  const size_t base = (size_t)blockIdx.x * kThreads * kPerThread;
  float acc = 0.f;
  for (int k = 0; k < kPerThread; k++) {
    const size_t i = base + (size_t)k * kThreads + threadIdx.x;
    if (i < n) acc += x[i] * x[i];
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) atomicAdd(sumsq, (double)acc);
}

__global__ void clip_kernel(float* clip, float* norm, const double* sumsq, double max_norm) {
  const double nrm = sqrt(*sumsq);
  if (norm) *norm = (float)nrm;
  if (!isfinite(nrm)) {
    *clip = NAN;
    return;
  }
  *clip = max_norm > 0 ? (float)fmin(1.0, max_norm / (nrm + 1e-6)) : 1.f;
}

}  // namespace

void sum_of_squares(double* sumsq, const float* x, size_t n, cudaStream_t stream) {
  require(n > 0 && sumsq && x, "sum_of_squares", "bad size n=", n);
  launch<sum_of_squares_kernel>(grid_for(n, kThreads * kPerThread), kThreads, 0, stream, sumsq, x, n);
  CUDA_LAUNCH_CHECK("sum_of_squares");
}

void grad_clip_factor(float* clip, float* norm, const double* sumsq, double max_norm, cudaStream_t stream) {
  require(clip && sumsq, "grad_clip_factor", "null pointer");
  launch<clip_kernel>(1, 1, 0, stream, clip, norm, sumsq, max_norm);
  CUDA_LAUNCH_CHECK("grad_clip_factor");
}

}  // namespace rt::cuda
