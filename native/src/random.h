#pragma once
// Counter-based random numbers: value i of stream s depends only on (seed, s, i), so initialisation is
// reproducible whatever the thread count.
#include <cmath>
#include <cstdint>

namespace rt {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// uniform in (0, 1)
inline double uniform01(uint64_t seed, uint64_t stream, uint64_t i) {
  const uint64_t r = splitmix64(splitmix64(seed ^ splitmix64(stream)) + i);
  return ((r >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

// standard normal by Box-Muller
inline double normal01(uint64_t seed, uint64_t stream, uint64_t i) {
  const double u1 = uniform01(seed, stream, 2 * i), u2 = uniform01(seed, stream, 2 * i + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * M_PI * u2);
}

}  // namespace rt
