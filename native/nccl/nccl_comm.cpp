// The ring epoch's communicator and its collectives (see nccl_comm.h).
#include "nccl_comm.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

namespace rt::nccl {
namespace {

using Clock = std::chrono::steady_clock;

void cuda_check(cudaError_t e, const char* what, int line) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("nccl data plane: ") + what + " failed: " + cudaGetErrorString(e) + " at " +
                             __FILE__ + ":" + std::to_string(line));
}
#define NCCL_CUDA_CHECK(call) cuda_check((call), #call, __LINE__)

// How often a wait looks at NCCL's state: short next to any ring timeout, long next to a poll's cost.
constexpr auto kPollInterval = std::chrono::milliseconds(1);

struct Segment {
  size_t start, length;
};
// Segment i of n elements cut over `size` ranks: lengths differ by at most one, the first n % size longer.
Segment segment(size_t n, int size, int i) {
  const size_t base = n / size, extra = n % size;
  return {i * base + std::min<size_t>(i, extra), base + ((size_t)i < extra ? 1 : 0)};
}

// The stand-in library's way into device memory: the runtime's copy, which infers each side's kind.
int device_copy(void* dst, const void* src, size_t bytes) {
  return cudaMemcpy(dst, src, bytes, cudaMemcpyDefault) == cudaSuccess ? 0 : 1;
}

}  // namespace

UniqueId new_unique_id(const Library& lib) {
  UniqueId id{};
  const Result r = lib.get_unique_id(&id);
  if (r != kSuccess) throw std::runtime_error(lib.describe("ncclGetUniqueId", r, nullptr));
  return id;
}

Communicator::Communicator(const Library& lib, int rank, int size) : lib_(lib), rank_(rank), size_(size) {}

std::shared_ptr<Communicator> Communicator::connect(const Library& lib, const UniqueId& id, int rank, int size,
                                                    int timeout_ms) {
  if (size < 1 || rank < 0 || rank >= size)
    throw std::invalid_argument("ncclCommInitRankConfig: rank " + std::to_string(rank) + " outside a ring of " +
                                std::to_string(size));
  if (lib.standin_attach) lib.standin_attach(device_copy);
  std::shared_ptr<Communicator> c(new Communicator(lib, rank, size));
  NCCL_CUDA_CHECK(cudaGetDevice(&c->device_));
  cudaStream_t s = nullptr;
  NCCL_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  c->stream_ = s;
  cudaEvent_t e = nullptr;
  NCCL_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  c->ready_ = e;
  NCCL_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  c->done_ = e;

  Config config;
  config.blocking = 0;  // returns at once; the state is polled below, so a missing rank cannot hang this thread
  Result r = lib.comm_init_rank_config(&c->comm_, size, id, rank, &config);
  if (r != kSuccess && r != kInProgress) {
    const std::string why = lib.describe("ncclCommInitRankConfig", r, c->comm_);
    c->abort();
    throw std::runtime_error(why);
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    Result state = kInProgress;
    r = lib.comm_get_async_error(c->comm_, &state);
    if (r == kSuccess && state == kSuccess) break;
    if (r != kSuccess || state != kInProgress) {
      const std::string why = lib.describe("ncclCommInitRankConfig", r != kSuccess ? r : state, c->comm_);
      c->abort();
      throw std::runtime_error(why);
    }
    if (Clock::now() >= deadline) {
      c->abort();
      throw std::runtime_error("ncclCommInitRankConfig: rank " + std::to_string(rank) + " of " + std::to_string(size) +
                               ": the ring's other ranks did not all join within " + std::to_string(timeout_ms) +
                               " ms");
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  return c;
}

Communicator::~Communicator() {
  abort();
  cudaSetDevice(device_);
  if (done_) cudaEventDestroy(done_);
  if (ready_) cudaEventDestroy(ready_);
  if (stream_) cudaStreamDestroy(stream_);
}

void Communicator::abort() {
  std::lock_guard<std::mutex> g(abort_mu_);
  if (aborted_.exchange(true)) return;
  // Abort rather than destroy, even at the end of a healthy epoch: destroy may wait for peers that are gone.
  if (comm_) lib_.comm_abort(comm_);
}

void Communicator::fail(const std::string& why) { throw std::runtime_error(why); }

void Communicator::check(const char* call, Result r) {
  if (aborted_.load()) fail(std::string(call) + ": the NCCL communicator was aborted (the ring is re-forming)");
  // A non-blocking communicator may answer InProgress: the call is queued once its state leaves InProgress.
  while (r == kInProgress) {
    std::this_thread::sleep_for(kPollInterval);
    if (aborted_.load()) fail(std::string(call) + ": the NCCL communicator was aborted (the ring is re-forming)");
    Result state = kSuccess;
    const Result q = lib_.comm_get_async_error(comm_, &state);
    r = q != kSuccess ? q : state;
  }
  if (r != kSuccess) fail(lib_.describe(call, r, aborted_.load() ? nullptr : comm_));
}

void Communicator::begin(Stream compute) {
  if (aborted_.load()) fail("nccl data plane: the NCCL communicator was aborted (the ring is re-forming)");
  NCCL_CUDA_CHECK(cudaSetDevice(device_));
  NCCL_CUDA_CHECK(cudaEventRecord(ready_, compute));
  NCCL_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
}

void Communicator::all_reduce(float* data, size_t n, Stream compute) {
  if (n == 0) return;
  begin(compute);
  check("ncclAllReduce", lib_.all_reduce(data, data, n, kFloat32, kSum, comm_, stream_));
}

void Communicator::reduce_scatter(float* bucket, size_t n, Stream compute) {
  if (n == 0) return;
  begin(compute);
  if (n % size_ == 0) {  // equal segments: NCCL's own reduce-scatter, in place (segment q is this rank's)
    const size_t part = n / size_;
    check("ncclReduceScatter",
          lib_.reduce_scatter(bucket, bucket + (size_t)rank_ * part, part, kFloat32, kSum, comm_, stream_));
    return;
  }
  // Unequal segments: one reduce per segment to its owner, issued as a group (NCCL's reduce-scatter-v).
  check("ncclGroupStart", lib_.group_start());
  Result r = kSuccess;
  for (int i = 0; i < size_ && r == kSuccess; i++) {
    const Segment s = segment(n, size_, i);
    if (s.length) r = lib_.reduce(bucket + s.start, bucket + s.start, s.length, kFloat32, kSum, i, comm_, stream_);
  }
  const Result end = lib_.group_end();
  check("ncclReduce", r);
  check("ncclGroupEnd", end);
}

void Communicator::all_gather(float* bucket, size_t n, Stream compute) {
  if (n == 0) return;
  begin(compute);
  if (n % size_ == 0) {
    const size_t part = n / size_;
    check("ncclAllGather", lib_.all_gather(bucket + (size_t)rank_ * part, bucket, part, kFloat32, comm_, stream_));
    return;
  }
  check("ncclGroupStart", lib_.group_start());
  Result r = kSuccess;
  for (int i = 0; i < size_ && r == kSuccess; i++) {
    const Segment s = segment(n, size_, i);
    if (s.length) r = lib_.broadcast(bucket + s.start, bucket + s.start, s.length, kFloat32, i, comm_, stream_);
  }
  const Result end = lib_.group_end();
  check("ncclBroadcast", r);
  check("ncclGroupEnd", end);
}

void Communicator::ring_send_recv(const std::vector<std::pair<const float*, size_t>>& sends,
                                  const std::vector<std::pair<float*, size_t>>& recvs, Stream compute) {
  if (sends.empty() && recvs.empty()) return;
  begin(compute);
  const int next = (rank_ + 1) % size_, prev = (rank_ + size_ - 1) % size_;
  check("ncclGroupStart", lib_.group_start());
  Result r = kSuccess;
  for (size_t i = 0; i < std::max(sends.size(), recvs.size()) && r == kSuccess; i++) {
    if (i < sends.size()) r = lib_.send(sends[i].first, sends[i].second, kFloat32, next, comm_, stream_);
    if (i < recvs.size() && r == kSuccess)
      r = lib_.recv(recvs[i].first, recvs[i].second, kFloat32, prev, comm_, stream_);
  }
  const Result end = lib_.group_end();
  check("ncclSend/ncclRecv", r);
  check("ncclGroupEnd", end);
}

void Communicator::finish(Stream compute, int timeout_ms) {
  if (aborted_.load()) fail("nccl data plane: the NCCL communicator was aborted (the ring is re-forming)");
  NCCL_CUDA_CHECK(cudaSetDevice(device_));
  NCCL_CUDA_CHECK(cudaEventRecord(done_, stream_));
  NCCL_CUDA_CHECK(cudaStreamWaitEvent(compute, done_, 0));
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const cudaError_t q = cudaEventQuery(done_);
    if (q == cudaSuccess) return;
    if (q != cudaErrorNotReady) NCCL_CUDA_CHECK(q);
    Result state = kSuccess;
    const Result r = aborted_.load() ? kSuccess : lib_.comm_get_async_error(comm_, &state);
    if (aborted_.load()) fail("nccl data plane: the NCCL communicator was aborted (the ring is re-forming)");
    if (r != kSuccess || (state != kSuccess && state != kInProgress)) {
      const std::string why = lib_.describe("ncclCommGetAsyncError", r != kSuccess ? r : state, comm_);
      abort();
      fail(why);
    }
    if (Clock::now() >= deadline) {
      abort();
      fail("nccl data plane: the step's collectives did not finish within " + std::to_string(timeout_ms) +
           " ms (a silent ring peer); the communicator was aborted");
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

}  // namespace rt::nccl
