#pragma once
#include <cstddef>
#include "common.cuh"
#include "ops/adamw.h"

namespace rt::cuda {

// PyTorch AdamW on fp32 master weights p and moments m, v (the CPU backend's adamw_update, same order of
// operations): p *= 1 - lr*wd (when decay); m, v moments of g * grad_scale; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) +
// eps). p_bf16 (nullable) receives the bf16 compute copy of the updated weights. clip (nullable, device) multiplies the
// gradient on top of s.grad_scale: the clip factor computed on the device by grad_clip_factor, so a step needs no round
// trip to the host.
void adamw_update(float* p, bf16* p_bf16, const float* g, float* m, float* v, size_t n, const AdamWStep& s, bool decay,
                  const float* clip, cudaStream_t stream);

// dst[n] = bf16(src[n]): the compute copy of fp32 weights (after loading or initialising them).
void to_bf16(bf16* dst, const float* src, size_t n, cudaStream_t stream);

}  // namespace rt::cuda
