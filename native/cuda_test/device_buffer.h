#pragma once
// Test helpers: a device buffer that uploads and downloads std::vectors, and bf16 rounding on the host, so a
// bf16 test gives the CPU reference the very values the GPU sees.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <vector>
#include "common.cuh"

namespace rt::cuda::test {

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(size_t count) : n(count) {
    CUDA_CHECK(cudaMalloc(&ptr, sizeof(T) * (count ? count : 1)));
    CUDA_CHECK(cudaMemset(ptr, 0, sizeof(T) * (count ? count : 1)));
    CUDA_CHECK(cudaDeviceSynchronize());  // cleared before a backend's own (non-blocking) stream writes it
  }
  explicit DeviceBuffer(const std::vector<T>& v) : DeviceBuffer(v.size()) { upload(v); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cudaFree(ptr); }
  void upload(const std::vector<T>& v) {
    CUDA_CHECK(cudaMemcpy(ptr, v.data(), sizeof(T) * v.size(), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaDeviceSynchronize());  // landed before a backend's own (non-blocking) stream reads it
  }
  std::vector<T> download() const {
    std::vector<T> v(n);
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(v.data(), ptr, sizeof(T) * n, cudaMemcpyDeviceToHost));
    return v;
  }
};

// A device copy of v starting `shift` elements into its allocation: a pack kernel's entry sees a base that is
// aligned (shift 0) or not (shift 1), the way LoRA slices and flat offsets reach it.
template <typename T>
struct ShiftedBuffer {
  DeviceBuffer<T> buf;
  T* ptr;
  size_t n;
  ShiftedBuffer(const std::vector<T>& v, int shift) : buf(v.size() + 8), ptr(buf.ptr + shift), n(v.size()) {
    CUDA_CHECK(cudaMemcpy(ptr, v.data(), sizeof(T) * v.size(), cudaMemcpyHostToDevice));
  }
  std::vector<T> get() const {
    std::vector<T> v(n);
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(v.data(), ptr, sizeof(T) * n, cudaMemcpyDeviceToHost));
    return v;
  }
};

inline float to_float(float x) { return x; }
inline float to_float(bf16 x) { return __bfloat162float(x); }
template <typename T>
inline T from_float(float x);
template <>
inline float from_float<float>(float x) {
  return x;
}
template <>
inline bf16 from_float<bf16>(float x) {
  return __float2bfloat16_rn(x);
}

// v converted to T (the device copy) and, in place, v rounded to what T holds (the reference's input).
template <typename T>
std::vector<T> to_device_type(std::vector<float>& v) {
  std::vector<T> out(v.size());
  for (size_t i = 0; i < v.size(); i++) {
    out[i] = from_float<T>(v[i]);
    v[i] = to_float(out[i]);
  }
  return out;
}
template <typename T>
std::vector<float> to_floats(const std::vector<T>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); i++) out[i] = to_float(v[i]);
  return out;
}

template <typename T>
constexpr const char* precision_name() {
  return sizeof(T) == 4 ? "fp32" : "bf16";
}

// A tolerance abs + rel * |ref| per precision.
struct Tol {
  double abs, rel;
};
template <typename T>
constexpr Tol pick(Tol f32, Tol b16) {
  return sizeof(T) == 4 ? f32 : b16;
}

}  // namespace rt::cuda::test
