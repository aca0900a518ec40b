#pragma once
// 128-bit copies: 8 bf16 (or 4 floats) per load or store instruction instead of one. Both addresses must be
// 16-byte aligned: the GPU faults on a misaligned vector access, and the emulator stops the launch saying so
// (a plain memcpy there would hide the fault).
#include <cstdint>
#include <cstring>
#include "common.cuh"

#ifdef RT_DEVICE_CODE
namespace rt::cuda {

constexpr int kVectorBytes = 16;

__device__ __forceinline__ void copy16(void* dst, const void* src) {
#ifdef RINGTUNE_CUDA_EMU
  if (((uintptr_t)dst | (uintptr_t)src) % kVectorBytes != 0)
    ::ringtune_emu::fail_in_kernel("128-bit copy: an address is not 16-byte aligned");
  std::memcpy(dst, src, kVectorBytes);
#else
  *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
#endif
}

__device__ __forceinline__ void zero16(void* dst) {
#ifdef RINGTUNE_CUDA_EMU
  if ((uintptr_t)dst % kVectorBytes != 0) ::ringtune_emu::fail_in_kernel("128-bit store: address not 16-byte aligned");
  std::memset(dst, 0, kVectorBytes);
#else
  *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
#endif
}

// Whether p may be the base of 128-bit accesses.
inline bool aligned16(const void* p) { return (uintptr_t)p % kVectorBytes == 0; }

// Elements of T in one 128-bit pack (8 bf16, 4 floats).
template <typename T>
constexpr int pack_size() {
  return kVectorBytes / (int)sizeof(T);
}

// v = the pack of T at x, as floats (x 16-byte aligned).
template <typename T, int K>
__device__ __forceinline__ void load_pack(float (&v)[K], const T* x) {
  static_assert(K * sizeof(T) == kVectorBytes, "a pack is 16 bytes");
  alignas(16) T t[K];
  copy16(t, x);
  for (int e = 0; e < K; e++) v[e] = to_f(t[e]);
}
// The pack of T at x = v, rounded as from_f does (x 16-byte aligned).
template <typename T, int K>
__device__ __forceinline__ void store_pack(T* x, const float (&v)[K]) {
  static_assert(K * sizeof(T) == kVectorBytes, "a pack is 16 bytes");
  alignas(16) T t[K];
  for (int e = 0; e < K; e++) t[e] = from_f<T>(v[e]);
  copy16(x, t);
}

}  // namespace rt::cuda
#endif
