#pragma once
// What the CUDA emulator's parts share: the calling thread's error state, the device-memory registry, and the
// devices (which is current, how many, how much memory each has). Not part of the CUDA API the kernels and launchers
// see.
#include <cuda_runtime.h>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace ringtune_emu {

// Records e as the calling thread's last error with what the emulator found; returns e.
cudaError_t set_error(cudaError_t e, const std::string& detail);
// Makes e (an error taken with cudaGetLastError) the calling thread's last error again, keeping its detail.
void restore_last_error(cudaError_t e);

// Stream capture (graphs.cpp). A captured operation is kept as a function that runs it on a given stream.
enum class NodeKind { Kernel, Memcpy, Memset, EventRecord, EventWait };
struct GraphNode {
  NodeKind kind;
  const void* kernel;  // kernels: the function, which an exec update must find unchanged
  std::string what;    // for messages
  std::function<cudaError_t(cudaStream_t)> run;
};
// When s is capturing, appends the node to its capture and returns true; otherwise returns false (run it now).
bool capture_node(cudaStream_t s, GraphNode&& node);
// The id of s's active capture (0: none). Ids are never reused.
uint64_t capture_id(cudaStream_t s);
bool capture_live(uint64_t id);
// Ends s's capture with an error: its cudaStreamEndCapture then fails naming `why`.
void invalidate_capture(cudaStream_t s, const std::string& why);
// A call that synchronises with the host or allocates: cudaSuccess when the calling thread may make it; else the
// error (naming `call` and the capturing stream) after invalidating the captures that forbid it.
cudaError_t refuse_during_capture(const char* call);
unsigned long long count_graph_launches();
unsigned long long count_graph_kernels();
unsigned long long count_captured_kernels();

int current_device();
int device_count();
// Each device's memory: RINGTUNE_EMU_MEMORY_MB (default 16 GiB).
size_t device_memory_bytes();
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
// The counters ringtune_emu_read_counters() reports.
void count_allocation();
void count_host_sync();
// Checks every live allocation's guard bytes; on damage describes the first one found, restores the guards
// and returns false.
bool check_guards(std::string* report);
std::string describe_address(const void* p);

// Device memory is inaccessible to the host (as on a GPU, where a host read of a device pointer faults)
// except while a DeviceAccess is alive: for a launch every live allocation, for a copy or memset the ones
// it touches. Accesses are serialised across host threads. RINGTUNE_EMU_HOST_ACCESS=allow leaves device
// memory readable by the host at all times.
class DeviceAccess {
 public:
  DeviceAccess();                                        // every live allocation
  DeviceAccess(const void* a, const void* b = nullptr);  // the allocations holding a and b
  ~DeviceAccess();
  DeviceAccess(const DeviceAccess&) = delete;
  DeviceAccess& operator=(const DeviceAccess&) = delete;

 private:
  std::unique_lock<std::recursive_mutex> lock_;
  std::vector<std::pair<uintptr_t, size_t>> opened_;
};
// The dynamic shared memory a kernel may ask for: 48 KiB unless cudaFuncSetAttribute raised it.
size_t dynamic_shared_limit(const void* kernel);

}  // namespace ringtune_emu
