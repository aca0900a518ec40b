#pragma once
#include <cmath>
#include <cstddef>

namespace rt {

// Sum of squares in double: the global gradient norm is sqrt of its total over all parameters.
template <typename T>
double sum_of_squares(const T* x, size_t n) {
  // Blocks summed in T (vectorized), block totals in double: accurate for any buffer size.
  const size_t block = 4096;
  double acc = 0;
#pragma omp parallel for schedule(static) reduction(+ : acc)
  for (size_t b0 = 0; b0 < n; b0 += block) {
    const size_t b1 = b0 + block < n ? b0 + block : n;
    T part = 0;
#pragma omp simd reduction(+ : part)
    for (size_t i = b0; i < b1; i++) part += x[i] * x[i];
    acc += (double)part;
  }
  return acc;
}

struct AdamWStep {
  double lr, beta1, beta2, eps, weight_decay;
  double bias_correction1, bias_correction2;  // 1 - beta^t
  double grad_scale;                          // clipping factor applied to the gradient (1 = none)
};

// PyTorch AdamW: p *= 1 - lr*wd (decoupled decay); m, v moments of the (clipped) gradient; then
// p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps).
template <typename T>
void adamw_update(T* p, const T* g, T* m, T* v, size_t n, const AdamWStep& s, bool decay) {
  // In T arithmetic (float in training), so the loop vectorizes; the constants are folded in double first.
  const T b1 = (T)s.beta1, b2 = (T)s.beta2, one_b1 = (T)(1 - s.beta1), one_b2 = (T)(1 - s.beta2);
  const T step_size = (T)(s.lr / s.bias_correction1);
  const T inv_sqrt_bc2 = (T)(1 / std::sqrt(s.bias_correction2));
  const T shrink = (T)(decay ? 1.0 - s.lr * s.weight_decay : 1.0);
  const T eps = (T)s.eps, gs = (T)s.grad_scale;
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    const T gi = g[i] * gs;
    const T mi = b1 * m[i] + one_b1 * gi;
    const T vi = b2 * v[i] + one_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * shrink - step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
  }
}

}  // namespace rt
