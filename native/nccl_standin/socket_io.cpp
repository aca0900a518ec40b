// Local TCP sockets for the stand-in NCCL (see socket_io.h).
#include "socket_io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace rt::nccl_standin {
namespace {

// Between two looks at the stop flag: short enough that an abort is prompt.
constexpr int kPollMs = 50;

[[noreturn]] void fail(const std::string& what) { throw SocketError(what + ": " + std::strerror(errno)); }

sockaddr_in local_address(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

void set_nonblocking(int fd) {
  const int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) fail("fcntl(O_NONBLOCK)");
}

void check_stop(const std::atomic<bool>& stop) {
  if (stop.load()) throw SocketError("the communicator was aborted");
}

}  // namespace

int listen_local(uint16_t* port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket");
  sockaddr_in a = local_address(0);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || listen(fd, 64) < 0) {
    close(fd);
    fail("bind/listen on 127.0.0.1");
  }
  socklen_t len = sizeof a;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) < 0) {
    close(fd);
    fail("getsockname");
  }
  *port = ntohs(a.sin_port);
  set_nonblocking(fd);
  return fd;
}

int connect_local(uint16_t port, const std::atomic<bool>& stop) {
  for (;;) {
    check_stop(stop);
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket");
    sockaddr_in a = local_address(port);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      set_nonblocking(fd);
      return fd;
    }
    const int err = errno;
    close(fd);
    if (err != ECONNREFUSED) {
      errno = err;
      fail("connect to 127.0.0.1:" + std::to_string(port));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
  }
}

int accept_one(int listener, const std::atomic<bool>& stop) {
  for (;;) {
    check_stop(stop);
    pollfd p{listener, POLLIN, 0};
    const int n = poll(&p, 1, kPollMs);
    if (n < 0 && errno != EINTR) fail("poll (accept)");
    if (n <= 0) continue;
    const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) continue;
      fail("accept");
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    set_nonblocking(fd);
    return fd;
  }
}

void exchange(int send_fd, const void* send, size_t send_bytes, int recv_fd, void* recv, size_t recv_bytes,
              const std::atomic<bool>& stop, const std::string& send_peer, const std::string& recv_peer) {
  const char* out = static_cast<const char*>(send);
  char* in = static_cast<char*>(recv);
  size_t sent = 0, got = 0;
  while (sent < send_bytes || got < recv_bytes) {
    check_stop(stop);
    pollfd p[2];
    int n = 0, si = -1, ri = -1;
    if (sent < send_bytes) si = n, p[n++] = {send_fd, POLLOUT, 0};
    if (got < recv_bytes) ri = n, p[n++] = {recv_fd, POLLIN, 0};
    const int ready = poll(p, n, kPollMs);
    if (ready < 0 && errno != EINTR) fail("poll");
    if (ready <= 0) continue;
    if (si >= 0 && (p[si].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t k = ::send(send_fd, out + sent, send_bytes - sent, MSG_NOSIGNAL);
      if (k < 0 && errno != EAGAIN && errno != EINTR) fail("send to " + send_peer);
      if (k > 0) sent += (size_t)k;
    }
    if (ri >= 0 && (p[ri].revents & (POLLIN | POLLERR | POLLHUP))) {
      const ssize_t k = ::recv(recv_fd, in + got, recv_bytes - got, 0);
      if (k == 0) throw SocketError(recv_peer + " closed its connection (the process ended?)");
      if (k < 0 && errno != EAGAIN && errno != EINTR) fail("receive from " + recv_peer);
      if (k > 0) got += (size_t)k;
    }
  }
}

void close_fd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace rt::nccl_standin
