#pragma once
// The NCCL data plane as the Node binding reaches it, whichever CUDA runtime runs it: the emulator's (linked into
// the addon, for `cuda-emu`) or the CUDA runtime's (inside ringtune_cuda_device.so, for `cuda:N`, reached through
// that library's table). A communicator records events and makes streams and device copies, so it must belong
// to the runtime that made the model's buffers: each runtime's build of nccl_comm.cpp sits behind one Plane, and
// the binding picks the plane by the model's device. Both cross the library seam as C++ objects, as the backend
// does (one build, one compiler; cuda_device_abi.h's hash covers this header).
#include <memory>
#include <string>
#include <utility>
#include <vector>
#include "nccl_api.h"

namespace rt::nccl {

enum class Op { AllReduce, ReduceScatter, AllGather };

// One communicator of a ring epoch (nccl_comm.h says what each call does).
class Collectives {
 public:
  virtual ~Collectives() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual void abort() = 0;  // from any thread; idempotent
  virtual bool aborted() const = 0;
  // `op` in place on n floats of device memory, ordered after the compute stream's work so far.
  virtual void run(Op op, float* data, size_t n, Stream compute) = 0;
  // Point to point round the ring (sequence parallelism): each send of n floats of device memory to rank + 1,
  // each receive from rank - 1, as one group after the compute stream's work so far.
  virtual void ring_send_recv(const std::vector<std::pair<const float*, size_t>>& sends,
                              const std::vector<std::pair<float*, size_t>>& recvs, Stream compute) = 0;
  // The compute stream, then the host (at most timeout_ms), wait for every collective issued.
  virtual void finish(Stream compute, int timeout_ms) = 0;
  // `op` on a device copy of n floats of host memory, copied back (tests and tools).
  virtual void run_on_host_copy(Op op, float* host, size_t n, int timeout_ms) = 0;
};

struct Probe {
  bool available = false;
  std::string path;    // the libnccl.so.2 opened
  int version = 0;     // its NCCL_VERSION_CODE
  std::string reason;  // why none opened
};

class Plane {
 public:
  virtual ~Plane() = default;
  // Which runtime: "the CUDA runtime" or "the ringtune CUDA emulator".
  virtual const char* runtime() const = 0;
  virtual Probe probe() const = 0;
  // A new unique id (its bootstrap runs in this process); throws naming why.
  virtual UniqueId unique_id() const = 0;
  // Joins communicator `id` as `rank` of `size` with CUDA device `device` (negative: the calling thread's current
  // device); throws after timeout_ms, or naming why.
  virtual std::shared_ptr<Collectives> connect(const UniqueId& id, int rank, int size, int timeout_ms,
                                               int device) const = 0;
};

// The plane over the CUDA runtime this code is compiled against.
const Plane& runtime_plane();

}  // namespace rt::nccl
