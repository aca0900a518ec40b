// Devices, streams and events of the CUDA emulator. RINGTUNE_EMU_DEVICES devices (default 2, so code that
// must keep cuda:1 work off device 0 can be tested); the current device belongs to the calling host thread,
// as in CUDA. Every operation completes before its call returns, so streams and events keep issue order
// trivially; a stream or event still belongs to the device that was current when it was created.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include "emu_internal.h"

struct CUstream_st {
  int device;
};
struct CUevent_st {
  int device;
  bool recorded;
  std::chrono::steady_clock::time_point at;
  uint64_t captured_in;  // the capture its last record went into (0: recorded on a running stream)
};

namespace ringtune_emu {
namespace {

thread_local int current = 0;

struct Handles {
  std::mutex mu;
  std::set<const CUstream_st*> streams;
  std::set<const CUevent_st*> events;
  std::map<const void*, size_t> shared_limits;
};
Handles& handles() {
  static Handles* h = new Handles;
  return *h;
}

bool live_event(cudaEvent_t e) {
  Handles& h = handles();
  std::lock_guard<std::mutex> lock(h.mu);
  return h.events.count(e) > 0;
}

// A new stream or event joins the live handles of its kind; destroying one that is not live (never made, or
// destroyed already) is refused rather than freed twice.
template <typename Handle>
Handle* remember(std::set<const Handle*> Handles::*live, Handle* made) {
  Handles& h = handles();
  std::lock_guard<std::mutex> lock(h.mu);
  (h.*live).insert(made);
  return made;
}
template <typename Handle>
bool forget(std::set<const Handle*> Handles::*live, Handle* gone) {
  Handles& h = handles();
  std::lock_guard<std::mutex> lock(h.mu);
  if (!gone || !(h.*live).erase(gone)) return false;
  delete gone;
  return true;
}

}  // namespace

int device_count() {
  static const int n = [] {
    const char* s = std::getenv("RINGTUNE_EMU_DEVICES");
    const int v = s ? std::atoi(s) : 2;
    return v < 0 ? 0 : v;
  }();
  return n;
}

int current_device() { return current; }

size_t device_memory_bytes() {
  static const size_t bytes = [] {
    const char* s = std::getenv("RINGTUNE_EMU_MEMORY_MB");
    return (s ? std::strtoull(s, nullptr, 10) : 16384ull) << 20;
  }();
  return bytes;
}

int stream_device(cudaStream_t s) {
  if (!s) return current;
  Handles& h = handles();
  std::lock_guard<std::mutex> lock(h.mu);
  return h.streams.count(s) ? s->device : -1;
}

size_t dynamic_shared_limit(const void* kernel) {
  Handles& h = handles();
  std::lock_guard<std::mutex> lock(h.mu);
  auto it = h.shared_limits.find(kernel);
  return it == h.shared_limits.end() ? 48 << 10 : it->second;
}

}  // namespace ringtune_emu

using namespace ringtune_emu;

cudaError_t ringtune_emu_func_set_max_dynamic_shared(const void* kernel, int bytes) {
  if (bytes < 0 || bytes > 227 * 1024)
    return set_error(cudaErrorInvalidValue, "cudaFuncSetAttribute: at most 227 KiB of dynamic shared memory (sm_90)");
  Handles& h = handles();
  std::lock_guard<std::mutex> lock(h.mu);
  h.shared_limits[kernel] = (size_t)bytes;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int* count) {
  *count = device_count();
  return device_count() > 0 ? cudaSuccess : set_error(cudaErrorNoDevice, "RINGTUNE_EMU_DEVICES=0");
}

cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= device_count())
    return set_error(cudaErrorInvalidDevice, "cudaSetDevice(" + std::to_string(device) + "): the emulator has " +
                                                 std::to_string(device_count()) + " devices (RINGTUNE_EMU_DEVICES)");
  current = device;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  *device = current;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device < 0 || device >= device_count())
    return set_error(cudaErrorInvalidDevice, "cudaGetDeviceProperties(" + std::to_string(device) + ")");
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "ringtune CUDA emulator (CPU)");
  p->totalGlobalMem = device_memory_bytes();
  p->sharedMemPerBlock = 48 << 10;
  p->sharedMemPerBlockOptin = 227 << 10;
  p->sharedMemPerMultiprocessor = 228 << 10;
  p->regsPerBlock = 65536;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 0x7fffffff;
  p->maxGridSize[1] = p->maxGridSize[2] = 65535;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 1;
  p->maxThreadsPerMultiProcessor = 2048;
  p->pciBusID = device;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, int, int device) {
  if (device < 0 || device >= device_count()) return set_error(cudaErrorInvalidDevice, "cudaDeviceGetAttribute");
  *value = 0;
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  if (const cudaError_t e = refuse_during_capture("cudaDeviceSynchronize")) return e;
  count_host_sync();
  return cudaSuccess;
}
cudaError_t cudaDeviceReset() { return cudaSuccess; }

cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) {
  *s = remember(&Handles::streams, new CUstream_st{current});
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  return forget(&Handles::streams, s) ? cudaSuccess
                                      : set_error(cudaErrorInvalidResourceHandle, "cudaStreamDestroy: unknown stream");
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (const cudaError_t e = refuse_during_capture("cudaStreamSynchronize")) return e;
  if (capture_id(s)) {
    invalidate_capture(s, "cudaStreamSynchronize of the capturing stream");
    return set_error(cudaErrorStreamCaptureUnsupported, "cudaStreamSynchronize of a capturing stream");
  }
  count_host_sync();
  return stream_device(s) < 0 ? set_error(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize: unknown stream")
                              : cudaSuccess;
}
// Every call has completed before it returns: a query always finds the stream idle, without waiting.
cudaError_t cudaStreamQuery(cudaStream_t s) {
  if (capture_id(s)) {
    invalidate_capture(s, "cudaStreamQuery of the capturing stream");
    return set_error(cudaErrorStreamCaptureUnsupported, "cudaStreamQuery of a capturing stream");
  }
  return stream_device(s) < 0 ? set_error(cudaErrorInvalidResourceHandle, "cudaStreamQuery: unknown stream")
                              : cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
  if (stream_device(s) < 0) return set_error(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: unknown stream");
  if (!live_event(e)) return set_error(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: unknown event");
  if (const uint64_t id = capture_id(s)) {
    // Inside a capture a wait orders the graph's own nodes: the event must have been recorded in it.
    if (e->captured_in != id) {
      invalidate_capture(s, "cudaStreamWaitEvent for an event recorded outside the capture");
      return set_error(cudaErrorStreamCaptureIsolation,
                       "cudaStreamWaitEvent: a capturing stream waits for an event recorded outside its capture");
    }
    capture_node(s, GraphNode{NodeKind::EventWait, nullptr, "event wait", [](cudaStream_t) { return cudaSuccess; }});
    return cudaSuccess;
  }
  if (capture_live(e->captured_in))
    return set_error(cudaErrorStreamCaptureUnsupported,
                     "cudaStreamWaitEvent: a stream waits for an event recorded in another stream's capture (a "
                     "cross-stream capture is not emulated)");
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int) {
  *e = remember(&Handles::events, new CUevent_st{current, false, {}, 0});
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  return forget(&Handles::events, e) ? cudaSuccess
                                     : set_error(cudaErrorInvalidResourceHandle, "cudaEventDestroy: unknown event");
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!live_event(e)) return set_error(cudaErrorInvalidResourceHandle, "cudaEventRecord: unknown event");
  const int sd = stream_device(s);
  if (sd < 0) return set_error(cudaErrorInvalidResourceHandle, "cudaEventRecord: unknown stream");
  if (sd != e->device)
    return set_error(cudaErrorInvalidResourceHandle, "cudaEventRecord: an event of device " +
                                                         std::to_string(e->device) + " on a stream of device " +
                                                         std::to_string(sd));
  const auto record = [e] {
    e->recorded = true;
    e->at = std::chrono::steady_clock::now();
    e->captured_in = 0;
    return cudaSuccess;
  };
  if (const uint64_t id = capture_id(s)) {
    capture_node(s, GraphNode{NodeKind::EventRecord, nullptr, "event record",
                              [e, record](cudaStream_t) { return live_event(e) ? record() : cudaSuccess; }});
    e->captured_in = id;
    return cudaSuccess;
  }
  return record();
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (const cudaError_t err = refuse_during_capture("cudaEventSynchronize")) return err;
  count_host_sync();
  if (!live_event(e)) return set_error(cudaErrorInvalidResourceHandle, "cudaEventSynchronize: unknown event");
  if (capture_live(e->captured_in))
    return set_error(cudaErrorCapturedEvent, "cudaEventSynchronize of an event recorded in an active capture");
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t e) {
  if (!live_event(e)) return set_error(cudaErrorInvalidResourceHandle, "cudaEventQuery: unknown event");
  if (capture_live(e->captured_in))
    return set_error(cudaErrorCapturedEvent, "cudaEventQuery of an event recorded in an active capture");
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  if (!live_event(a) || !live_event(b))
    return set_error(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: unknown event");
  if (!a->recorded || !b->recorded)
    return set_error(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: an event was never recorded");
  *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
  return cudaSuccess;
}
