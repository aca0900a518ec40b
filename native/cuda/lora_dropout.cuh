#pragma once
// LoRA dropout on an adapter's input, with the CPU's counter-based mask (random.h's uniform01 of (seed, stream,
// i), the same function on both): keep(i) = uniform01 >= p. The mask is drawn again in the backward, never kept.
#include <cstddef>
#include <cstdint>
#include "common.cuh"

namespace rt::cuda {

// xd[i] = keep(i) ? x[i] / (1 - p) : 0
void lora_dropout_forward(float* xd, const float* x, size_t n, double p, uint64_t seed, uint64_t stream_id,
                          cudaStream_t stream);
// dinp[i] += keep(i) ? dxd[i] / (1 - p) : 0
void lora_dropout_backward(float* dinp, const float* dxd, size_t n, double p, uint64_t seed, uint64_t stream_id,
                           cudaStream_t stream);

}  // namespace rt::cuda
