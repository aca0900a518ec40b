#pragma once
#include <cmath>
#include <cstddef>
#include "vexp.h"

namespace rt {

// h = silu(gate) * up, elementwise over n values
template <typename T>
void swiglu_forward(T* h, const T* gate, const T* up, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    T g = gate[i];
    h[i] = g / (T(1) + vexp(-g)) * up[i];
  }
}

// dgate = dh * up * silu'(gate), dup = dh * silu(gate);  silu'(g) = s * (1 + g * (1 - s)), s = sigmoid(g).
// dgate may alias dh (the MLP backward saves a buffer that way).
template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dh, const T* gate, const T* up, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    T g = gate[i];
    const T s = T(1) / (T(1) + vexp(-g));
    const T d = dh[i];
    dup[i] = d * g * s;
    dgate[i] = d * up[i] * s * (T(1) + g * (T(1) - s));
  }
}

}  // namespace rt
