#pragma once
#include <cstddef>
#include "common.cuh"

namespace rt::cuda {

// *sumsq (device double) += sum of x^2: fp32 within a block, the block totals added in double, so the
// result is accurate for any buffer size. The global gradient norm is sqrt of the total over all buffers.
void sum_of_squares(double* sumsq, const float* x, size_t n, cudaStream_t stream);

// *clip (device) = min(1, max_norm / (sqrt(*sumsq) + 1e-6)) (torch.nn.utils.clip_grad_norm_), or 1 when
// max_norm <= 0; *norm (device, nullable) = sqrt(*sumsq). A non-finite norm gives clip = NaN, which the
// caller must check (the CPU backend refuses the update).
void grad_clip_factor(float* clip, float* norm, const double* sumsq, double max_norm, cudaStream_t stream);

}  // namespace rt::cuda
