#pragma once
// Sequence parallelism's blocks over NCCL (ring_link.h's DeviceRingLink): send/recv between ring neighbours on
// the communicator's stream, straight between device buffers. The communicator's rank order is the group's
// (next = rank + 1), and wait() polls it with the ring's timeout, failing as the gradient collectives do.
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>
#include "nccl_plane.h"
#include "ring_link.h"

namespace rt::nccl {

class NcclRingLink final : public DeviceRingLink {
 public:
  NcclRingLink(std::shared_ptr<Collectives> comm, int timeout_ms) : comm_(std::move(comm)), timeout_ms_(timeout_ms) {}
  void start(const std::vector<Piece>& sends, const std::vector<Piece>& recvs, void* compute) override {
    sends_.clear();
    recvs_.clear();
    for (const Piece& p : sends) sends_.emplace_back(static_cast<const float*>(p.data), floats(p.bytes));
    for (const Piece& p : recvs) recvs_.emplace_back(static_cast<float*>(p.data), floats(p.bytes));
    comm_->ring_send_recv(sends_, recvs_, static_cast<Stream>(compute));
  }
  void wait(void* compute) override { comm_->finish(static_cast<Stream>(compute), timeout_ms_); }

 private:
  // Every block is whole 4-byte words (fp32 K/V, int32 segment ids): moved as fp32, NCCL's common type.
  static size_t floats(size_t bytes) {
    if (bytes % sizeof(float) != 0) throw std::runtime_error("nccl ring link: a transfer of odd bytes");
    return bytes / sizeof(float);
  }
  std::shared_ptr<Collectives> comm_;
  int timeout_ms_;
  std::vector<std::pair<const float*, size_t>> sends_;
  std::vector<std::pair<float*, size_t>> recvs_;
};

}  // namespace rt::nccl
