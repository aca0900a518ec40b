#pragma once
// Attention of new queries over a KV cache (generation and serving).
#include <algorithm>
#include <cmath>
#include <vector>

namespace rt {

// att[n, H*D] for n new queries q[n, H*D] at cache positions start..start+n-1, whose keys and values are
// already in k, v (capacity, KVH*D): query i attends to positions 0..start+i. Scores in double.
template <typename T>
void cached_attention(T* att, const T* q, const T* k, const T* v, int start, int n, int H, int KVH, int D) {
  const int Q = H * D, KV = KVH * D, group = H / KVH;
  const double scale = 1.0 / std::sqrt((double)D);
#pragma omp parallel
  {
    std::vector<double> scores(start + n);
#pragma omp for schedule(static)
    for (int task = 0; task < n * H; task++) {
      const int i = task / H, h = task % H, kvh = h / group;
      const int p = start + i;  // attends to cache positions 0..p
      const T* qi = q + (size_t)i * Q + (size_t)h * D;
      double mx = -INFINITY;
      for (int j = 0; j <= p; j++) {
        const T* kj = k + (size_t)j * KV + (size_t)kvh * D;
        double s = 0;
        for (int d = 0; d < D; d++) s += (double)qi[d] * kj[d];
        scores[j] = s * scale;
        mx = std::max(mx, scores[j]);
      }
      double sum = 0;
      for (int j = 0; j <= p; j++) sum += scores[j] = std::exp(scores[j] - mx);
      T* ai = att + (size_t)i * Q + (size_t)h * D;
      for (int d = 0; d < D; d++) {
        double acc = 0;
        for (int j = 0; j <= p; j++) acc += scores[j] * v[(size_t)j * KV + (size_t)kvh * D + d];
        ai[d] = (T)(acc / sum);
      }
    }
  }
}

}  // namespace rt
