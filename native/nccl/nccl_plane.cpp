// The data plane over the CUDA runtime this file is compiled against (see nccl_plane.h): the emulator's in the
// addon, the CUDA runtime's in ringtune_cuda_device.so.
#include "nccl_plane.h"

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include "nccl_comm.h"

namespace rt::nccl {
namespace {

#ifdef RINGTUNE_CUDA_EMU
constexpr const char* kRuntime = "the ringtune CUDA emulator";
#else
constexpr const char* kRuntime = "the CUDA runtime";
#endif

void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("nccl data plane (") + kRuntime + "): " + what + ": " + cudaGetErrorString(e));
}

class CommunicatorCollectives : public Collectives {
 public:
  explicit CommunicatorCollectives(std::shared_ptr<Communicator> c) : c_(std::move(c)) {}
  int rank() const override { return c_->rank(); }
  int size() const override { return c_->size(); }
  void abort() override { c_->abort(); }
  bool aborted() const override { return c_->aborted(); }

  void run(Op op, float* data, size_t n, Stream compute) override {
    switch (op) {
      case Op::AllReduce: return c_->all_reduce(data, n, compute);
      case Op::ReduceScatter: return c_->reduce_scatter(data, n, compute);
      case Op::AllGather: return c_->all_gather(data, n, compute);
    }
  }
  void ring_send_recv(const std::vector<std::pair<const float*, size_t>>& sends,
                      const std::vector<std::pair<float*, size_t>>& recvs, Stream compute) override {
    c_->ring_send_recv(sends, recvs, compute);
  }
  void finish(Stream compute, int timeout_ms) override { c_->finish(compute, timeout_ms); }

  void run_on_host_copy(Op op, float* host, size_t n, int timeout_ms) override {
    float* dev = nullptr;
    cuda_check(cudaMalloc(&dev, n * sizeof(float) + 1), "cudaMalloc of the collective's buffer");
    struct Free {
      float* p;
      ~Free() { cudaFree(p); }
    } release{dev};
    cuda_check(cudaMemcpy(dev, host, n * sizeof(float), cudaMemcpyHostToDevice), "upload");
    run(op, dev, n, nullptr);
    finish(nullptr, timeout_ms);
    cuda_check(cudaMemcpy(host, dev, n * sizeof(float), cudaMemcpyDeviceToHost), "download");
  }

 private:
  std::shared_ptr<Communicator> c_;
};

const Library& library() {
  std::string why;
  const Library* lib = load_library(&why);
  if (!lib) throw std::runtime_error("NCCL: " + why);
  return *lib;
}

class RuntimePlane : public Plane {
 public:
  const char* runtime() const override { return kRuntime; }

  Probe probe() const override {
    Probe p;
    const Library* lib = load_library(&p.reason);
    p.available = lib != nullptr;
    if (lib) p.path = lib->path, p.version = lib->version;
    return p;
  }

  UniqueId unique_id() const override { return new_unique_id(library()); }

  std::shared_ptr<Collectives> connect(const UniqueId& id, int rank, int size, int timeout_ms,
                                       int device) const override {
    const Library& lib = library();
    // The communicator takes the calling thread's current device (its streams and events live there).
    if (device >= 0) cuda_check(cudaSetDevice(device), ("cudaSetDevice(" + std::to_string(device) + ")").c_str());
    return std::make_shared<CommunicatorCollectives>(Communicator::connect(lib, id, rank, size, timeout_ms));
  }
};

}  // namespace

const Plane& runtime_plane() {
  static const RuntimePlane plane;
  return plane;
}

}  // namespace rt::nccl
