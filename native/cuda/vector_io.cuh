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

// 64-bit copy: a pack of 4 floats rounded to bf16 (4 x 2 bytes) is stored in one instruction. Both addresses
// 8-byte aligned (checked under the emulator as copy16 is).
__device__ __forceinline__ void copy8(void* dst, const void* src) {
#ifdef RINGTUNE_CUDA_EMU
  if (((uintptr_t)dst | (uintptr_t)src) % 8 != 0)
    ::ringtune_emu::fail_in_kernel("64-bit copy: an address is not 8-byte aligned");
  std::memcpy(dst, src, 8);
#else
  *reinterpret_cast<uint2*>(dst) = *reinterpret_cast<const uint2*>(src);
#endif
}

// Whether p may be the base of 128-bit accesses.
inline bool aligned16(const void* p) { return (uintptr_t)p % kVectorBytes == 0; }
// Whether every row of a (rows, cols) row-major matrix of T at p starts 16-byte aligned, so a row may be read in
// packs: p aligned and a row a whole number of packs.
template <typename T>
inline bool rows_aligned16(const void* p, size_t cols) {
  return aligned16(p) && cols * sizeof(T) % kVectorBytes == 0;
}

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

// K floats rounded to bf16 at x (the bf16 copy of a pack another kernel keeps in fp32): one 128-bit store for 8,
// one 64-bit store for 4. x aligned to K * 2 bytes.
template <int K>
__device__ __forceinline__ void store_rounded(bf16* x, const float (&v)[K]) {
  static_assert(K == 4 || K == 8, "a rounded pack is 4 or 8 values");
  alignas(16) bf16 t[K];
  for (int e = 0; e < K; e++) t[e] = __float2bfloat16_rn(v[e]);
  if constexpr (K == 8) copy16(x, t);
  else copy8(x, t);
}

// K elements of T at x as floats: one 128-bit load for a whole pack (x aligned), one element for K = 1. Kernels
// templated on K run the same code over packs or, where alignment or a width rules packs out, single elements.
template <typename T, int K>
__device__ __forceinline__ void load_k(float (&v)[K], const T* x) {
  if constexpr (K > 1) load_pack(v, x);
  else v[0] = to_f(x[0]);
}
template <typename T, int K>
__device__ __forceinline__ void store_k(T* x, const float (&v)[K]) {
  if constexpr (K > 1) store_pack(x, v);
  else x[0] = from_f<T>(v[0]);
}
template <int K>
__device__ __forceinline__ void store_rounded_k(bf16* x, const float (&v)[K]) {
  if constexpr (K > 1) store_rounded(x, v);
  else x[0] = __float2bfloat16_rn(v[0]);
}

}  // namespace rt::cuda
#endif
