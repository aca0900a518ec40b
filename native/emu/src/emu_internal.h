#pragma once
// What the CUDA emulator's parts share: the calling thread's error state, the device-memory registry and the
// current device. Not part of the CUDA API the kernels and launchers see.
#include <cuda_runtime.h>
#include <cstddef>
#include <cstdint>
#include <string>

namespace ringtune_emu {

// Records e as the calling thread's last error with what the emulator found; returns e.
cudaError_t set_error(cudaError_t e, const std::string& detail);

int current_device();
int device_count();
// The device a stream belongs to (the default stream: the current device), or -1 for a destroyed handle.
int stream_device(cudaStream_t s);

struct Allocation {
  uintptr_t base;   // the pointer cudaMalloc returned
  size_t size;      // the bytes asked for
  uint64_t serial;  // the n-th cudaMalloc of this process, for messages
  int device;
};
// The live device allocation holding address p (one past the end counts), or false.
bool find_allocation(const void* p, Allocation* out);
// True when p lies in the emulator's device arena (live, freed or never handed out).
bool in_device_arena(const void* p);
// True when p lies in memory from cudaMallocHost / cudaHostAlloc.
bool in_pinned(const void* p);
// Checks every live allocation's guard bytes; on damage describes the first one found, restores the guards
// and returns false.
bool check_guards(std::string* report);
std::string describe_address(const void* p);
// The dynamic shared memory a kernel may ask for: 48 KiB unless cudaFuncSetAttribute raised it.
size_t dynamic_shared_limit(const void* kernel);

}  // namespace ringtune_emu
