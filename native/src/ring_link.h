#pragma once
// The byte stream ring attention moves key/value blocks over: each rank of a sequence-parallel group sends
// to the next rank and receives from the previous one. Calls block until every byte has moved; ring
// attention runs one sending and one receiving thread per step, so neither side ever waits on the other.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rt {

class RingLink {
 public:
  virtual ~RingLink() = default;
  virtual void send(const void* data, size_t bytes) = 0;  // to the next rank
  virtual void recv(void* data, size_t bytes) = 0;        // from the previous rank
  // Ends every transfer in progress or to come with an error (the ring is being torn down).
  virtual void shutdown() {}
};

// A link over two connected stream sockets (TCP, or a local socket pair in tests); it closes both when destroyed.
// With peer_timeout_ms > 0 a transfer that makes no progress for that long fails, naming the silent side: a
// stopped peer (SIGSTOP, a hung host) keeps its sockets open, so nothing else would end the wait.
class FdRingLink : public RingLink {
 public:
  FdRingLink(int send_fd, int recv_fd, int peer_timeout_ms = 0)
      : send_fd_(send_fd), recv_fd_(recv_fd), peer_timeout_ms_(peer_timeout_ms) {}
  ~FdRingLink() override;
  void send(const void* data, size_t bytes) override;
  void recv(void* data, size_t bytes) override;
  void shutdown() override;

 private:
  int send_fd_, recv_fd_;
  int peer_timeout_ms_;
};

// Time ring attention spent moving blocks, and the part of it the compute did not hide (accumulated).
struct RingStats {
  double transfer_ms = 0;  // sum over steps: from asking for the step's transfers to their last byte
  double exposed_ms = 0;   // sum over steps of the wait for the transfers after the compute
  double bytes_sent = 0;
};

// A ring whose data plane moves device memory itself (NCCL send/recv between neighbours): a device ring
// attention's blocks then go from device buffer to device buffer, never through the host. start() issues one
// step's sends to the next rank and receives from the previous one, in the order given (as RingLink's), after
// the work issued so far on the compute stream; wait() returns once they are done, and orders the compute
// stream's later work after them.
class DeviceRingLink {
 public:
  struct Piece {
    void* data;
    size_t bytes;
  };
  virtual ~DeviceRingLink() = default;
  virtual void start(const std::vector<Piece>& sends, const std::vector<Piece>& recvs, void* compute_stream) = 0;
  virtual void wait(void* compute_stream) = 0;
};

// The group a rank belongs to. size 1 (or no link) is a plain, unsplit row.
struct SequenceParallel {
  int rank = 0, size = 1;
  RingLink* link = nullptr;
  RingStats* stats = nullptr;  // optional
  // Optional, for device ranks only: the blocks move over it instead of `link` (which may then be null).
  DeviceRingLink* device_link = nullptr;
};

// N links joined in a ring by socket pairs inside one process: rank r sends to rank r+1 (mod N).
std::vector<std::unique_ptr<RingLink>> local_ring(int n, int peer_timeout_ms = 0);

// TCP: a listening socket on host (port 0: any free port), then one connection to the next rank and one
// accepted from the previous rank. The secret is the first thing each connection carries and is checked
// on accept, so a stray connection cannot join the ring.
struct TcpRingListener {
  int fd = -1, port = 0;
  TcpRingListener(const std::string& host, int port);
  ~TcpRingListener();
  // Connects to next (retrying until timeout_ms) while accepting one peer; returns the link, whose transfers
  // fail after peer_timeout_ms without progress (0: they wait for ever). Both sockets use TCP keepalive.
  std::unique_ptr<RingLink> join(const std::string& next_host, int next_port, const std::string& secret, int timeout_ms,
                                 int peer_timeout_ms = 0);
};

}  // namespace rt
