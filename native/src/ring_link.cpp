#include "ring_link.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <thread>
#include "error.h"

namespace rt {

FdRingLink::~FdRingLink() {
  if (send_fd_ >= 0) ::close(send_fd_);
  if (recv_fd_ >= 0 && recv_fd_ != send_fd_) ::close(recv_fd_);
}

// Waits until fd is ready for `events`; false when timeout_ms (> 0) passes first. 0 waits for ever.
static bool wait_ready(int fd, short events, int timeout_ms) {
  if (timeout_ms <= 0) return true;
  pollfd pf{fd, events, 0};
  while (true) {
    const int r = ::poll(&pf, 1, timeout_ms);
    if (r > 0) return true;  // ready, or an error/hang-up the next call reports
    if (r == 0) return false;
    if (errno != EINTR) return true;  // let the transfer itself report the error
  }
}

[[noreturn]] static void peer_silent(const char* which, int timeout_ms) {
  fail("ring link", "ring peer (the ", which, " rank) did not answer within ", timeout_ms / 1000.0, " s");
}

static void write_all(int fd, const void* data, size_t bytes, int timeout_ms = 0) {
  const char* p = (const char*)data;
  while (bytes > 0) {
    if (!wait_ready(fd, POLLOUT, timeout_ms)) peer_silent("next", timeout_ms);
    const ssize_t n = ::send(fd, p, bytes, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("ring link", "send to the next rank failed: ", n < 0 ? std::strerror(errno) : "closed");
    p += n;
    bytes -= (size_t)n;
  }
}

void FdRingLink::send(const void* data, size_t bytes) { write_all(send_fd_, data, bytes, peer_timeout_ms_); }

void FdRingLink::recv(void* data, size_t bytes) {
  char* p = (char*)data;
  while (bytes > 0) {
    if (!wait_ready(recv_fd_, POLLIN, peer_timeout_ms_)) peer_silent("previous", peer_timeout_ms_);
    const ssize_t n = ::read(recv_fd_, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("ring link", "receive from the previous rank failed: ", std::strerror(errno));
    if (n == 0) fail("ring link", "the previous rank closed the connection with ", bytes, " bytes still expected");
    p += n;
    bytes -= (size_t)n;
  }
}

void FdRingLink::shutdown() {
  if (send_fd_ >= 0) ::shutdown(send_fd_, SHUT_RDWR);
  if (recv_fd_ >= 0) ::shutdown(recv_fd_, SHUT_RDWR);
}

std::vector<std::unique_ptr<RingLink>> local_ring(int n, int peer_timeout_ms) {
  std::vector<int> rd(n), wr(n);  // socket pair r carries rank r's sends to rank r+1
  for (int r = 0; r < n; r++) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
      fail("local_ring", "socketpair: ", std::strerror(errno));
    rd[r] = fds[0];
    wr[r] = fds[1];
  }
  std::vector<std::unique_ptr<RingLink>> links;
  for (int r = 0; r < n; r++)
    links.push_back(std::make_unique<FdRingLink>(wr[r], rd[(r + n - 1) % n], peer_timeout_ms));
  return links;
}

// ---- TCP -------------------------------------------------------------------------------------------------

static sockaddr_in resolve(const std::string& host, int port) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || !res) fail("ring link", "cannot resolve host '", host, "': ", gai_strerror(rc));
  sockaddr_in a = *(const sockaddr_in*)res->ai_addr;
  ::freeaddrinfo(res);
  a.sin_port = htons((uint16_t)port);
  return a;
}

// No Nagle delay for the blocks; keepalive probes so a peer whose host vanished (no FIN, no RST) is noticed
// by the kernel after about 10 + 3 x 5 s even when no transfer is waiting on it.
static void tune(int fd) {
  const int one = 1, idle_s = 10, interval_s = 5, probes = 3;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof interval_s);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
}

TcpRingListener::TcpRingListener(const std::string& host, int want_port) {
  fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("ring link", "socket: ", std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = resolve(host, want_port);
  if (::bind(fd, (sockaddr*)&a, sizeof a) != 0 || ::listen(fd, 4) != 0) {
    const int e = errno;
    ::close(fd);
    fd = -1;
    fail("ring link", "cannot listen on ", host, ":", want_port, ": ", std::strerror(e));
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, (sockaddr*)&a, &len);
  port = ntohs(a.sin_port);
}

TcpRingListener::~TcpRingListener() {
  if (fd >= 0) ::close(fd);
}

static bool read_with_deadline(int fd, char* p, size_t n, std::chrono::steady_clock::time_point deadline) {
  while (n > 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd pf{fd, POLLIN, 0};
    if (::poll(&pf, 1, (int)left.count()) <= 0) continue;
    const ssize_t r = ::read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= (size_t)r;
  }
  return true;
}

std::unique_ptr<RingLink> TcpRingListener::join(const std::string& next_host, int next_port, const std::string& secret,
                                                int timeout_ms, int peer_timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  const uint32_t secret_len = (uint32_t)secret.size();
  int out = -1, in = -1;
  std::exception_ptr connect_error;
  std::thread connector([&] {
    try {
      const sockaddr_in a = resolve(next_host, next_port);
      while (true) {
        out = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (::connect(out, (const sockaddr*)&a, sizeof a) == 0) break;
        const int e = errno;
        ::close(out);
        out = -1;
        if (std::chrono::steady_clock::now() > deadline)
          fail("ring link", "cannot connect to the next rank at ", next_host, ":", next_port, ": ", std::strerror(e));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      tune(out);
      write_all(out, &secret_len, sizeof secret_len);
      write_all(out, secret.data(), secret.size());
    } catch (...) {
      connect_error = std::current_exception();
    }
  });
  std::string accept_error;
  while (in < 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      accept_error = "no previous rank connected in time";
      break;
    }
    pollfd pf{fd, POLLIN, 0};
    if (::poll(&pf, 1, (int)left.count()) <= 0) continue;
    const int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    uint32_t len = 0;
    std::string got;
    bool ok = read_with_deadline(c, (char*)&len, sizeof len, deadline) && len == secret_len;
    if (ok) {
      got.resize(len);
      ok = read_with_deadline(c, got.data(), len, deadline) && got == secret;
    }
    if (!ok) {  // a stray or wrongly keyed connection: drop it and keep waiting for the real peer
      ::close(c);
      continue;
    }
    tune(c);
    in = c;
  }
  connector.join();
  if (connect_error || in < 0) {
    if (out >= 0) ::close(out);
    if (in >= 0) ::close(in);
    if (connect_error) std::rethrow_exception(connect_error);
    fail("ring link", accept_error, " on port ", port);
  }
  return std::make_unique<FdRingLink>(out, in, peer_timeout_ms);
}

}  // namespace rt
