// The entry of ringtune_cuda_device.so (and of its emulated twin, ringtune_cuda_device_emu.so, the same code over
// the CUDA emulator for the tests): the backend factory, the memory query and the NCCL data plane behind the C table
// the loader reads.
// Exceptions never cross the seam as such: each becomes the error text the loader turns back into one.
#include <cuda_runtime.h>
#include <cstdio>
#include <exception>
#include "cuda_backend.h"
#include "cuda_device_abi.h"
#include "nccl_plane.h"

#ifndef RINGTUNE_BACKEND_ABI
#error "RINGTUNE_BACKEND_ABI must be defined (native/CMakeLists.txt hashes the interface headers)"
#endif
#ifndef RINGTUNE_CUDA_DEVICE_BUILD
#error "RINGTUNE_CUDA_DEVICE_BUILD must be defined (native/CMakeLists.txt: the runtime and the GPU code built)"
#endif

namespace {

void set_error(char* error, size_t size, const char* what) {
  if (error && size) std::snprintf(error, size, "%s", what);
}

rt::Backend<float>* make_backend(int device, int bf16, char* error, size_t size) {
  try {
    return rt::cuda::make_cuda_backend(device, bf16 ? rt::cuda::Precision::bf16 : rt::cuda::Precision::fp32).release();
  } catch (const std::exception& e) {
    set_error(error, size, e.what());
    return nullptr;
  }
}

bool memory(int device, size_t* free_bytes, size_t* total_bytes, char* error, size_t size) {
  int previous = 0;
  cudaGetDevice(&previous);
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) e = cudaMemGetInfo(free_bytes, total_bytes);
  cudaSetDevice(previous);
  if (e != cudaSuccess) {
    char what[256];
    std::snprintf(what, sizeof what, "device %d: %s (%s)", device, cudaGetErrorName(e), cudaGetErrorString(e));
    set_error(error, size, what);
    return false;
  }
  return true;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) const RingtuneCudaDevice* ringtune_cuda_device_v1() {
  static const RingtuneCudaDevice table{RINGTUNE_BACKEND_ABI, RINGTUNE_CUDA_DEVICE_BUILD, make_backend, memory,
                                        &rt::nccl::runtime_plane()};
  return &table;
}
