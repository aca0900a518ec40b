#pragma once
#include <cstddef>
#include "common.cuh"

namespace rt::cuda {

// out = a + b (the residual connection); out may alias a or b
template <typename T>
void add(T* out, const T* a, const T* b, size_t n, cudaStream_t stream);

// acc += x (a tensor used twice sums its gradient contributions)
template <typename T>
void add_inplace(T* acc, const T* x, size_t n, cudaStream_t stream);

}  // namespace rt::cuda
