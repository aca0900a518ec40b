#pragma once
// The CUDA emulator's stand-in for cuda_bf16.h: the bf16 storage type and its conversions, bit-exact with the
// GPU's (round to nearest even; a NaN becomes the canonical 0x7fff).
#include <cstdint>
#include <cstring>

struct __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f);  // NOLINT: implicit, as in CUDA's header
  operator float() const;  // NOLINT
};
typedef __nv_bfloat16 nv_bfloat16;

inline unsigned short ringtune_emu_float_to_bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  u += 0x7fffu + ((u >> 16) & 1u);
  return (unsigned short)(u >> 16);
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  __nv_bfloat16 b;
  b.__x = ringtune_emu_float_to_bf16_bits(f);
  return b;
}
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline float __bfloat162float(__nv_bfloat16 b) {
  const uint32_t u = (uint32_t)b.__x << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short x) {
  __nv_bfloat16 b;
  b.__x = x;
  return b;
}
inline __nv_bfloat16::__nv_bfloat16(float f) : __x(ringtune_emu_float_to_bf16_bits(f)) {}
inline __nv_bfloat16::operator float() const { return __bfloat162float(*this); }
