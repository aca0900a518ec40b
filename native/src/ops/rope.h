#pragma once
// Rotary position embedding in Hugging Face's split-halves convention (rotate_half): dimension j is paired
// with j + D/2, not with its neighbour. inv_freq[D/2] comes from the config (see rope_inv_freq).
#include <cmath>
#include <cstdint>
#include <vector>
#include "../config.h"

namespace rt {

// inv_freq[j] = theta^(-2j/D), adjusted by Llama 3 frequency scaling as transformers'
// _compute_llama3_parameters does: long wavelengths divided by `factor`, short ones kept, a smooth blend between.
inline std::vector<double> rope_inv_freq(const ModelConfig& cfg) {
  const int D = cfg.head_dim;
  std::vector<double> inv(D / 2);
  for (int j = 0; j < D / 2; j++) inv[j] = 1.0 / std::pow(cfg.rope_theta, (2.0 * j) / D);
  const RopeScaling& rs = cfg.rope_scaling;
  if (!rs.llama3) return inv;
  const double old_len = rs.original_max_position_embeddings;
  const double low_wavelen = old_len / rs.low_freq_factor, high_wavelen = old_len / rs.high_freq_factor;
  for (double& f : inv) {
    const double wavelen = 2 * M_PI / f;
    if (wavelen > low_wavelen) {
      f = f / rs.factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth = (old_len / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
      f = (1 - smooth) * f / rs.factor + smooth * f;
    }
  }
  return inv;
}

// In place on x[N, heads*D]: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin), angle = pos[n] * inv_freq[j].
// inverse=true applies the transpose rotation, which is the backward (rotation is orthogonal).
template <typename T>
void rope_apply(T* x, const int32_t* pos, const double* inv_freq, int N, int heads, int D, bool inverse) {
  const int half = D / 2;
#pragma omp parallel
  {
    std::vector<T> c(half), s(half);
#pragma omp for schedule(static)
    for (int n = 0; n < N; n++) {
      for (int j = 0; j < half; j++) {
        const double a = (double)pos[n] * inv_freq[j];
        c[j] = (T)std::cos(a);
        s[j] = (T)(inverse ? -std::sin(a) : std::sin(a));
      }
      for (int h = 0; h < heads; h++) {
        T* v = x + ((size_t)n * heads + h) * D;
        for (int j = 0; j < half; j++) {
          const T x1 = v[j], x2 = v[j + half];
          v[j] = x1 * c[j] - x2 * s[j];
          v[j + half] = x2 * c[j] + x1 * s[j];
        }
      }
    }
  }
}

template <typename T>
void rope_forward(T* x, const int32_t* pos, const double* inv_freq, int N, int heads, int D) {
  rope_apply(x, pos, inv_freq, N, heads, D, false);
}
template <typename T>
void rope_backward(T* dx, const int32_t* pos, const double* inv_freq, int N, int heads, int D) {
  rope_apply(dx, pos, inv_freq, N, heads, D, true);
}

}  // namespace rt
