#pragma once
// SwiGLU's per-element math, shared by the plain kernels (swiglu.cu) and the fused ones (swiglu_fused.cu) so
// that both give the same bits.
#include "common.cuh"

#ifdef RT_DEVICE_CODE
namespace rt::cuda {

__device__ __forceinline__ float swiglu_value(float g, float u) { return g / (1.f + expf(-g)) * u; }
// (d gate, d up) of swiglu at (g, u), given the output gradient d
__device__ __forceinline__ void swiglu_gradient(float& dg, float& du, float d, float g, float u) {
  const float s = 1.f / (1.f + expf(-g));
  du = d * g * s;
  dg = d * u * s * (1.f + g * (1.f - s));
}

}  // namespace rt::cuda
#endif
