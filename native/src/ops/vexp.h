#pragma once
// exp for the hot loops (softmax, cross entropy, SiLU). For float, a branch-free Cephes-style expf that GCC
// vectorizes (glibc's expf only vectorizes under -ffast-math, which the reference backend does not use);
// relative error about 2e-7, below float's own rounding of the inputs. For double (the finite-difference
// checks), std::exp.
#include <cmath>
#include <cstdint>
#include <cstring>

namespace rt {

inline float vexp(float x) {
  const float hi = 88.3762626647949f, lo = -87.3365447504020f;
  const float xc = x > hi ? hi : (x < lo ? lo : x);
  const float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  // r = x - n ln2, with ln2 split in two for accuracy
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < lo ? 0.0f : p * scale;
}

inline double vexp(double x) { return std::exp(x); }

}  // namespace rt
