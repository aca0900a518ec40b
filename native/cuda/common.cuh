#pragma once
// Shared by every CUDA op: the error check (every CUDA call and every launch, with file and line) and the
// storage types, and the one kernel launch. Host-only code may include this header: the device helpers are
// compiled only for device code (nvcc, or g++ against the CPU emulator in native/emu, RINGTUNE_CUDA_EMU).
//
// Precision: activations and the weights' compute copy are stored as T (float for the checking mode,
// __nv_bfloat16 for training); every reduction and every GEMM accumulates in fp32. Parameter gradients,
// master weights and AdamW moments are always fp32.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cstdint>
#include <utility>
#include "error.h"

#if defined(__CUDACC__) || defined(RINGTUNE_CUDA_EMU)
#define RT_DEVICE_CODE 1
#endif

#ifdef RT_DEVICE_CODE
#define RT_HD __host__ __device__
#else
#define RT_HD
#endif

namespace rt::cuda {

using bf16 = __nv_bfloat16;

[[noreturn]] inline void throw_cuda(cudaError_t e, const char* what, const char* file, int line) {
  fail(what, cudaGetErrorName(e), " (", cudaGetErrorString(e), ") at ", file, ":", line);
}

}  // namespace rt::cuda

// A CUDA runtime call; throws rt::Error naming the call, the error, the file and the line.
#define CUDA_CHECK(call)                                                                \
  do {                                                                                  \
    const cudaError_t rt_e_ = (call);                                                   \
    if (rt_e_ != cudaSuccess) ::rt::cuda::throw_cuda(rt_e_, #call, __FILE__, __LINE__); \
  } while (0)

// After every kernel launch: a bad configuration is reported here, naming the op.
#define CUDA_LAUNCH_CHECK(op)                                                        \
  do {                                                                               \
    const cudaError_t rt_e_ = cudaGetLastError();                                    \
    if (rt_e_ != cudaSuccess) ::rt::cuda::throw_cuda(rt_e_, op, __FILE__, __LINE__); \
  } while (0)

#ifdef RT_DEVICE_CODE
namespace rt::cuda {

// Every kernel launch: K<<<grid, block, smem, stream>>>(args...) under nvcc, the emulator's launch under g++
// (which checks the pointer arguments and the guard bytes afterwards). Follow it with CUDA_LAUNCH_CHECK.
template <auto K, typename... A>
inline void launch(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, A&&... args) {
#ifdef RINGTUNE_CUDA_EMU
  ::ringtune_emu::launch_kernel<K>(grid, block, smem, stream, std::forward<A>(args)...);
#else
  // clang-format splits the closing chevrons of a launch in a header
  // clang-format off
  K<<<grid, block, smem, stream>>>(std::forward<A>(args)...);
  // clang-format on
#endif
}

// The block's dynamic shared memory (the launch's smem bytes) as a T*.
#ifdef RINGTUNE_CUDA_EMU
#define RT_DYNAMIC_SHARED(T, name) T* name = static_cast<T*>(::ringtune_emu::dynamic_shared())
#else
#define RT_DYNAMIC_SHARED(T, name)                          \
  extern __shared__ __align__(16) unsigned char rt_smem_[]; \
  T* name = reinterpret_cast<T*>(rt_smem_)
#endif

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }
template <typename T>
__device__ __forceinline__ T from_f(float x);
template <>
__device__ __forceinline__ float from_f<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ bf16 from_f<bf16>(float x) {
  return __float2bfloat16_rn(x);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float part[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();  // part may still be read by a previous call
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = lane < warps ? part[lane] : 0.f;
  return warp_sum(v);
}

inline unsigned grid_for(size_t n, int block) { return (unsigned)((n + block - 1) / block); }

}  // namespace rt::cuda
#endif

namespace rt::cuda {
// "No bad position": what cudaMemset(p, 0x7f, sizeof(int)) leaves in an int, above any position. The ops that
// check ids lower it to the first bad position with atomicMin, so the device reports the position the CPU does.
constexpr int kNoBadPosition = 0x7f7f7f7f;

// Shape checks in the public entries: fail(op, ...) with the sizes when a condition does not hold.
template <typename... Args>
inline void require(bool ok, const char* op, const Args&... parts) {
  if (!ok) fail(op, parts...);
}
}  // namespace rt::cuda
