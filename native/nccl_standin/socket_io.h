#pragma once
// Local TCP sockets (127.0.0.1) for the stand-in NCCL: listening, connecting, and moving whole buffers both
// ways at once with poll(), so that two ranks sending to each other never wait on each other's full socket
// buffers. Every wait checks a stop flag (the communicator's abort) between polls; any failure throws
// SocketError with what happened.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace rt::nccl_standin {

struct SocketError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A listening socket on 127.0.0.1, port 0 (any): returns the fd, *port the port it got.
int listen_local(uint16_t* port);
// Connects to 127.0.0.1:port, retrying while nobody listens yet, until `stop` is set.
int connect_local(uint16_t port, const std::atomic<bool>& stop);
// Accepts one connection on `listener`, waiting until `stop` is set.
int accept_one(int listener, const std::atomic<bool>& stop);

// Sends `send_bytes` of `send` on send_fd while receiving `recv_bytes` into `recv` from recv_fd; either may be 0.
// `who` names the peers in errors ("rank 1").
void exchange(int send_fd, const void* send, size_t send_bytes, int recv_fd, void* recv, size_t recv_bytes,
              const std::atomic<bool>& stop, const std::string& send_peer, const std::string& recv_peer);

inline void send_all(int fd, const void* p, size_t n, const std::atomic<bool>& stop, const std::string& peer) {
  exchange(fd, p, n, -1, nullptr, 0, stop, peer, peer);
}
inline void recv_all(int fd, void* p, size_t n, const std::atomic<bool>& stop, const std::string& peer) {
  exchange(-1, nullptr, 0, fd, p, n, stop, peer, peer);
}

void close_fd(int& fd);

}  // namespace rt::nccl_standin
