#pragma once
// Picking the next token from one position's logits: greedy at temperature 0, else a draw from the top-p
// nucleus. Shared by single-sequence and batched generation so both sample alike.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

namespace rt {

// softmax(logits / temperature), restricted to the smallest set of top tokens whose mass reaches top_p;
// u in (0, 1) picks the token.
inline int32_t sample_token(const std::vector<double>& logits, double temperature, double top_p, double u) {
  const int V = (int)logits.size();
  if (temperature <= 0) return (int32_t)(std::max_element(logits.begin(), logits.end()) - logits.begin());
  const double mx = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(V);
  double sum = 0;
  for (int i = 0; i < V; i++) sum += p[i] = std::exp((logits[i] - mx) / temperature);
  std::vector<int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
  int keep = 0;
  double mass = 0;
  while (keep < V && (keep == 0 || mass < top_p * sum)) mass += p[order[keep++]];
  double target = u * mass;
  for (int i = 0; i < keep; i++) {
    target -= p[order[i]];
    if (target <= 0) return order[i];
  }
  return order[keep - 1];
}

// The stream of generation's random draws: draw `step` of a sequence seeded with `seed`.
constexpr uint64_t kSampleStream = 0x5a3b1e;

}  // namespace rt
