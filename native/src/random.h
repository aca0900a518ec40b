#pragma once
// Counter-based random numbers: value i of stream s depends only on (seed, s, i), so initialisation is
// reproducible whatever the thread count.
#include <cmath>
#include <cstddef>
#include <cstdint>

// The CUDA ops draw LoRA's dropout masks with these same functions, so a mask is the same bits on every backend.
#ifdef __CUDACC__
#define RT_RANDOM_HD __host__ __device__
#else
#define RT_RANDOM_HD
#endif

namespace rt {

RT_RANDOM_HD inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// uniform in (0, 1)
RT_RANDOM_HD inline double uniform01(uint64_t seed, uint64_t stream, uint64_t i) {
  const uint64_t r = splitmix64(splitmix64(seed ^ splitmix64(stream)) + i);
  return ((r >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

// standard normal by Box-Muller
inline double normal01(uint64_t seed, uint64_t stream, uint64_t i) {
  const double u1 = uniform01(seed, stream, 2 * i), u2 = uniform01(seed, stream, 2 * i + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * M_PI * u2);
}

// n values of stream s, normal with standard deviation `std`, written to out[0..n), over all threads. One
// splitmix64 per pair of values (Box-Muller gives two normals from two uniforms) in single precision: about
// 5x fewer operations per value than normal01, which matters for billions of parameters. Value i depends
// only on (seed, stream, i), as with normal01, so the result does not depend on the thread count.
template <typename Store>
void fill_normal_with(size_t n, double std, uint64_t seed, uint64_t stream, Store store) {
  const uint64_t key = splitmix64(seed ^ splitmix64(stream));
  const float scale = (float)std;
  const int64_t pairs = (int64_t)((n + 1) / 2);
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < pairs; j++) {
    const uint64_t r = splitmix64(key + (uint64_t)j);
    // Two 24-bit uniforms; u1 in (0, 1] so the logarithm is finite.
    const float u1 = ((float)(r >> 40) + 1.0f) * (1.0f / 16777216.0f);
    const float u2 = (float)((r >> 8) & 0xffffff) * (1.0f / 16777216.0f);
    const float radius = scale * std::sqrt(-2.0f * std::log(u1));
    const float angle = 6.2831853f * u2;
    const size_t i = 2 * (size_t)j;
    store(i, radius * std::cos(angle));
    if (i + 1 < n) store(i + 1, radius * std::sin(angle));
  }
}

template <typename T>
void fill_normal(T* out, size_t n, double std, uint64_t seed, uint64_t stream) {
  fill_normal_with(n, std, seed, stream, [out](size_t i, float x) { out[i] = (T)x; });
}

}  // namespace rt
