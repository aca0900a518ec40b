#pragma once
#include <cmath>
#include <cstddef>

namespace rt {

// Sum of squares in double: the global gradient norm is sqrt of its total over all parameters.
template <typename T>
double sum_of_squares(const T* x, size_t n) {
  double acc = 0;
#pragma omp parallel for schedule(static) reduction(+ : acc)
  for (size_t i = 0; i < n; i++) acc += (double)x[i] * x[i];
  return acc;
}

struct AdamWStep {
  double lr, beta1, beta2, eps, weight_decay;
  double bias_correction1, bias_correction2;  // 1 - beta^t
  double grad_scale;                            // clipping factor applied to the gradient (1 = none)
};

// PyTorch AdamW: p *= 1 - lr*wd (decoupled decay); m, v moments of the (clipped) gradient; then
// p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps).
template <typename T>
void adamw_update(T* p, const T* g, T* m, T* v, size_t n, const AdamWStep& s, bool decay) {
  const double step_size = s.lr / s.bias_correction1;
  const double sqrt_bc2 = std::sqrt(s.bias_correction2);
  const double shrink = decay ? 1.0 - s.lr * s.weight_decay : 1.0;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    const double gi = (double)g[i] * s.grad_scale;
    const double mi = s.beta1 * m[i] + (1 - s.beta1) * gi;
    const double vi = s.beta2 * v[i] + (1 - s.beta2) * gi * gi;
    m[i] = (T)mi;
    v[i] = (T)vi;
    p[i] = (T)(p[i] * shrink - step_size * mi / (std::sqrt(vi) / sqrt_bc2 + s.eps));
  }
}

}  // namespace rt
