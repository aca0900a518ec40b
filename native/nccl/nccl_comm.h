#pragma once
// One NCCL communicator of a ring epoch, and the gradient collectives a step runs on it. The communicator is
// created non-blocking and its state polled until it is ready or the ring's timeout has passed (a rank that
// never joins); abort() ends it from any thread, failing any collective in progress (a silent or dead peer),
// after which the ring is re-formed with a new communicator.
//
// Stream ordering: the collectives run on the communicator's own stream. Each waits, through an event, for the
// work issued so far on the compute stream (the backward that made its bucket final), so the backward goes on
// while earlier buckets are summed; finish() makes the compute stream wait for every collective issued (the
// AdamW step comes after it) and waits on the host for them, polling NCCL's error state.
//
// Ownership for ZeRO-1: the rank passed to connect() is this process's NCCL rank q, and reduce_scatter leaves
// segment q of each bucket summed, where a bucket of n elements over `size` ranks is cut into segments whose
// lengths differ by at most one, the first n % size one longer (the TCP ring's cut, worker/allreduce/partition.ts).
#include <atomic>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>
#include "nccl_library.h"

struct CUevent_st;  // cudaEvent_t

namespace rt::nccl {

class Communicator {
 public:
  // Joins the communicator `id` names as rank `rank` of `size`; throws after timeout_ms (aborting the attempt).
  static std::shared_ptr<Communicator> connect(const Library& lib, const UniqueId& id, int rank, int size,
                                               int timeout_ms);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // Ends the communicator now, from any thread: a collective in progress and every later call fail. Idempotent.
  void abort();
  bool aborted() const { return aborted_.load(); }

  // Device buffers, ordered after the compute stream's work so far (see above). In place.
  void all_reduce(float* data, size_t n, Stream compute);
  void reduce_scatter(float* bucket, size_t n, Stream compute);
  void all_gather(float* bucket, size_t n, Stream compute);
  // Point to point round the ring (sequence parallelism): each send (n floats of device memory) to rank + 1 and
  // each receive from rank - 1, as one group, ordered after the compute stream's work so far.
  void ring_send_recv(const std::vector<std::pair<const float*, size_t>>& sends,
                      const std::vector<std::pair<float*, size_t>>& recvs, Stream compute);
  // The compute stream waits for every collective issued; the host waits too, at most timeout_ms.
  void finish(Stream compute, int timeout_ms);

 private:
  Communicator(const Library& lib, int rank, int size);
  void begin(Stream compute);              // the NCCL stream waits for the compute stream
  void check(const char* call, Result r);  // throws, naming the call, unless r is success (waits out InProgress)
  [[noreturn]] void fail(const std::string& why);

  const Library& lib_;
  Comm comm_ = nullptr;
  int rank_, size_, device_ = 0;
  Stream stream_ = nullptr;
  ::CUevent_st* ready_ = nullptr;  // recorded on the compute stream before each collective
  ::CUevent_st* done_ = nullptr;   // recorded on the NCCL stream by finish()
  std::mutex abort_mu_;
  std::atomic<bool> aborted_{false};
};

// A new unique id from the library (called by the ring's first rank; the id names its bootstrap).
UniqueId new_unique_id(const Library& lib);

}  // namespace rt::nccl
