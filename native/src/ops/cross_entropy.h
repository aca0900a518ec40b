#pragma once
#include <cmath>
#include <cstdint>
#include "../error.h"
#include "../ignore_index.h"
#include "vexp.h"

namespace rt {

struct LossSum {
  double sum = 0;
  int64_t count = 0;
};

// Per position n with labels[n] != -100: losses[n] = logsumexp(logits[n]) - logits[n][label]; 0 elsewhere.
// When dlogits is not null it receives d(scale * sum of losses)/dlogits = scale * (softmax - onehot),
// zero rows off-target; dlogits may alias logits (the logits are then consumed). weights (nullable, N): each
// position's loss counts weights[n] times in that sum, so a loss that is a function of per-sequence sums of
// log-probabilities (preference losses) back-propagates its own derivative per position.
template <typename T>
LossSum cross_entropy_forward_backward(T* losses, T* dlogits, const T* logits, const int32_t* labels, int N, int V,
                                       double scale, const float* weights = nullptr) {
  for (int n = 0; n < N; n++)
    if (labels[n] != kIgnoreIndex && (labels[n] < 0 || labels[n] >= V))
      fail("cross_entropy", "label ", labels[n], " at position ", n, " outside vocab [0,", V, ") and not -100");
  double sum = 0;
  int64_t count = 0;
#pragma omp parallel for schedule(static) reduction(+ : sum, count)
  for (int n = 0; n < N; n++) {
    const T* z = logits + (size_t)n * V;
    T* dz = dlogits ? dlogits + (size_t)n * V : nullptr;
    const int32_t y = labels[n];
    if (y == kIgnoreIndex) {
      losses[n] = 0;
      if (dz)
        for (int v = 0; v < V; v++) dz[v] = 0;
      continue;
    }
    const T zy = z[y];  // read before a possibly aliased write
    T mx = z[0];
    for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    T se = 0;
    if (dz) {
      // exp(z - max) goes straight into dz; one more pass normalises it into the gradient
#pragma omp simd reduction(+ : se)
      for (int v = 0; v < V; v++) se += dz[v] = vexp(z[v] - mx);
    } else {
#pragma omp simd reduction(+ : se)
      for (int v = 0; v < V; v++) se += vexp(z[v] - mx);
    }
    const double lse = mx + std::log((double)se);
    const double loss = lse - zy;
    losses[n] = (T)loss;
    sum += loss;
    count += 1;
    if (dz) {
      const double s = weights ? scale * weights[n] : scale;
      const T k = (T)(s / se);
#pragma omp simd
      for (int v = 0; v < V; v++) dz[v] *= k;
      dz[y] -= (T)s;
    }
  }
  return {sum, count};
}

}  // namespace rt
