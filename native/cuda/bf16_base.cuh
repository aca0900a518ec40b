#pragma once
// A frozen base held in bf16 (LoRA's base_bf16, a serving base): its bits as uint16_t in device memory, widened
// to fp32 a layer at a time for the GEMMs. The conversions are the host's (tensor_io.cpp): ties to even, a NaN
// stays a quiet NaN, so a base rounded on the device has the same bits as one rounded on the CPU.
#include <cstddef>
#include <cstdint>
#include "common.cuh"

namespace rt::cuda {

// dst[i] = float(src[i])
void widen_bf16(float* dst, const uint16_t* src, size_t n, cudaStream_t stream);
// dst[i] = bf16(src[i])
void round_to_bf16(uint16_t* dst, const float* src, size_t n, cudaStream_t stream);
// out[N,C] = float(wte[ids[n], :]). An id outside [0, V) gives a zero row and, when bad is not null, lowers *bad
// to its position (the caller sets kNoBadPosition first: the first bad position is reported, as on the CPU).
void embedding_forward_bf16(float* out, const int32_t* ids, const uint16_t* wte, int N, int C, int V, int* bad,
                            cudaStream_t stream);

}  // namespace rt::cuda
