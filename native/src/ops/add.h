#pragma once
#include <cstddef>

namespace rt {

// out = a + b (the residual connection)
template <typename T>
void add(T* out, const T* a, const T* b, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// acc += x (sums the gradient contributions of a tensor used twice)
template <typename T>
void add_inplace(T* acc, const T* x, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) acc[i] += x[i];
}

}  // namespace rt
