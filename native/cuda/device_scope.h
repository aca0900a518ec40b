#pragma once
// The CUDA runtime's current device belongs to the calling host thread, and Node runs native calls on whichever
// thread of its pool is free (every one of them starts on device 0). So each entry into the CUDA backend makes
// its own device current first: without that, a model on cuda:1 would launch its kernels on device 0 with
// pointers into device 1 (an illegal address on a GPU, an error naming both devices on the emulator).
#include "common.cuh"

namespace rt::cuda {

// Makes `device` current on the calling thread (cheap when it already is: one thread-local read).
inline void use_device(int device) {
  int current = -1;
  CUDA_CHECK(cudaGetDevice(&current));
  if (current != device) CUDA_CHECK(cudaSetDevice(device));
}

}  // namespace rt::cuda
