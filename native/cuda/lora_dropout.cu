#include "lora_dropout.cuh"
#include "random.h"

namespace rt::cuda {
namespace {

// accumulate: dst += the dropped src (the backward); otherwise dst = it (the forward).
template <bool accumulate>
__global__ void lora_dropout_kernel(float* dst, const float* src, size_t n, double p, float kept_scale, uint64_t seed,
                                    uint64_t stream_id) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float d = uniform01(seed, stream_id, i) >= p ? src[i] * kept_scale : 0.f;
  if (accumulate) dst[i] += d;
  else dst[i] = d;
}

void check(const char* op, const void* dst, const void* src, size_t n, double p) {
  require(dst && src && p >= 0 && p < 1, op, "bad arguments: n=", n, " p=", p);
}

}  // namespace

void lora_dropout_forward(float* xd, const float* x, size_t n, double p, uint64_t seed, uint64_t stream_id,
                          cudaStream_t stream) {
  if (n == 0) return;
  check("lora_dropout_forward", xd, x, n, p);
  launch<lora_dropout_kernel<false>>(grid_for(n, 256), 256, 0, stream, xd, x, n, p, (float)(1.0 / (1.0 - p)), seed,
                                     stream_id);
  CUDA_LAUNCH_CHECK("lora_dropout_forward");
}

void lora_dropout_backward(float* dinp, const float* dxd, size_t n, double p, uint64_t seed, uint64_t stream_id,
                           cudaStream_t stream) {
  if (n == 0) return;
  check("lora_dropout_backward", dinp, dxd, n, p);
  launch<lora_dropout_kernel<true>>(grid_for(n, 256), 256, 0, stream, dinp, dxd, n, p, (float)(1.0 / (1.0 - p)), seed,
                                    stream_id);
  CUDA_LAUNCH_CHECK("lora_dropout_backward");
}

}  // namespace rt::cuda
