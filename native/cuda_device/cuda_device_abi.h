#pragma once
// The seam between the Node addon (built on every host) and ringtune_cuda_device.so (the CUDA backend compiled by
// nvcc, built only where nvcc is): the addon loads the library with dlopen when `--device cuda[:N]` is asked
// for, so the addon itself links no CUDA and loads on machines without it. The library exports this one symbol;
// everything else in it is local, so its copy of the CUDA runtime (static), its kernels and its NCCL data plane meet
// nothing else.
//
// The backend crosses the seam as a C++ object: both sides are built from the same backend.h in one build. The
// loader refuses a library whose `abi` (a hash of the headers that define the interface) differs from its own.
#include <cstddef>
#include "backend.h"

namespace rt::nccl {
class Plane;  // nccl/nccl_plane.h
}

extern "C" {

struct RingtuneCudaDevice {
  const char* abi;    // the hash of the interface headers the library was built with (RINGTUNE_BACKEND_ABI)
  const char* build;  // what it holds: "CUDA 13.0 runtime (static), GPU code for 80-real;86-real;89-real;90"
  // The backend on CUDA device `device` (made current on the calling thread), computing in bf16 (bf16 != 0) or
  // fp32, owned by the caller; null with the reason in error[0..error_size) when the device cannot be used.
  rt::Backend<float>* (*make_backend)(int device, int bf16, char* error, size_t error_size);
  // Free and total bytes of device memory, as the runtime reports them; false with the reason in error.
  bool (*memory)(int device, size_t* free_bytes, size_t* total_bytes, char* error, size_t error_size);
  // The NCCL data plane over this library's CUDA runtime: a ring of GPUs sums the gradients of models made by
  // make_backend, in their device memory, on streams of the same runtime. libnccl.so.2 is opened at its first use.
  const rt::nccl::Plane* nccl;
};

// The library's table; the loader finds it by this name (kCudaDeviceEntry).
const RingtuneCudaDevice* ringtune_cuda_device_v1();
}

namespace rt {
constexpr const char* kCudaDeviceEntry = "ringtune_cuda_device_v1";
}
