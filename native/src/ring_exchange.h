#pragma once
// One step's transfers of ring attention: the sends to the next rank on one thread, the receives from the
// previous rank on another, in the order given (both ends of a link agree on it), while the caller computes.
// Shared by the host's ring attention and the device's, which move the same bytes in the same order (a ring
// may mix the two).
#include <algorithm>
#include <chrono>
#include <exception>
#include <thread>
#include <vector>
#include "ring_link.h"

namespace rt::ring {

struct Piece {
  void* data;
  size_t bytes;
};

using Clock = std::chrono::steady_clock;

inline double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

class Exchange {
 public:
  // A transfer's time runs from here, where it is asked for, to its last byte: thread start-up and a peer
  // that reaches the step later count as transfer time, to be hidden by the compute like the bytes themselves.
  Exchange(const SequenceParallel& sp, std::vector<Piece> sends, std::vector<Piece> recvs)
      : stats_(sp.stats), t0_(Clock::now()) {
    RingLink* link = sp.link;
    const auto t0 = t0_;
    if (!sends.empty())
      sender_ = std::thread([this, link, sends, t0] {
        try {
          for (const Piece& p : sends) link->send(p.data, p.bytes);
        } catch (...) {
          send_error_ = std::current_exception();
        }
        send_ms_ = ms_since(t0);
      });
    if (!recvs.empty())
      receiver_ = std::thread([this, link, recvs, t0] {
        try {
          for (const Piece& p : recvs) link->recv(p.data, p.bytes);
        } catch (...) {
          recv_error_ = std::current_exception();
        }
        recv_ms_ = ms_since(t0);
      });
    if (stats_)
      for (const Piece& p : sends) stats_->bytes_sent += (double)p.bytes;
  }
  ~Exchange() { join(); }
  void wait() {
    const auto t0 = Clock::now();
    join();
    if (stats_) {
      stats_->exposed_ms += ms_since(t0);
      stats_->transfer_ms += std::max(send_ms_, recv_ms_);
    }
    if (send_error_) std::rethrow_exception(send_error_);
    if (recv_error_) std::rethrow_exception(recv_error_);
  }

 private:
  void join() {
    if (sender_.joinable()) sender_.join();
    if (receiver_.joinable()) receiver_.join();
  }
  RingStats* stats_;
  Clock::time_point t0_;
  std::thread sender_, receiver_;
  std::exception_ptr send_error_, recv_error_;
  double send_ms_ = 0, recv_ms_ = 0;
};

}  // namespace rt::ring
