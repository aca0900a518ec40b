#pragma once
#include "common.cuh"

namespace rt::cuda {

// Per position n with labels[n] != -100: losses[n] = logsumexp(logits[n]) - logits[n][label]; 0 elsewhere.
// When dlogits is not null it receives scale * (softmax - onehot), zero rows off-target; it may alias
// logits (consumed in place). One block per row walks the vocabulary in chunks with an online max/sum, so the
// normalised softmax is never stored beyond the gradient itself. loss_sum (nullable, device) += the row
// losses; a label outside [0, V) and not -100 lowers *bad to its position (nullable; the caller sets
// kNoBadPosition first, and reads the first bad position).
// weights (nullable, device, N): position n's gradient is scaled by weights[n] too (preference losses).
// targets (nullable, device) += the positions with a label, counted by the same kernel (no launch of its own).
template <typename T>
void cross_entropy_forward_backward(float* losses, T* dlogits, const T* logits, const int32_t* labels, int N, int V,
                                    float scale, double* loss_sum, int* bad, cudaStream_t stream,
                                    const float* weights = nullptr, int* targets = nullptr);

// *count += the positions with a label (labels[n] != -100): the target count stays on the device with the loss sum.
void count_targets(int* count, const int32_t* labels, int N, cudaStream_t stream);

}  // namespace rt::cuda
