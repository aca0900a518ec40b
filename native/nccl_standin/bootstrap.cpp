// The stand-in NCCL's bootstrap root and registration (see bootstrap.h).
#include "bootstrap.h"

#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include "socket_io.h"

namespace rt::nccl_standin {
namespace {

constexpr char kMagic[8] = {'r', 't', 'n', 'c', 'c', 'l', 's', '1'};
// A root whose ranks never all come gives up after this long (its thread would otherwise live for ever).
constexpr auto kRootLifetime = std::chrono::minutes(10);

struct Registration {
  Token token;
  int32_t rank, size;
  uint16_t port;
};

Token random_token() {
  std::random_device rd;
  Token t;
  for (auto& b : t) b = (uint8_t)rd();
  return t;
}

// Accepts registrations until every rank of the ring has one, then tells each the ports.
void run_root(int listener, Token token) {
  std::atomic<bool> stop{false};
  std::thread timer([&stop] {
    const auto end = std::chrono::steady_clock::now() + kRootLifetime;
    while (!stop.load() && std::chrono::steady_clock::now() < end)
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop = true;
  });
  std::vector<int> fds;
  std::vector<uint16_t> ports;
  std::vector<bool> seen;
  int size = 0, registered = 0;
  try {
    while (size == 0 || registered < size) {
      int fd = accept_one(listener, stop);
      Registration r{};
      try {
        recv_all(fd, &r, sizeof r, stop, "a registering rank");
      } catch (const SocketError&) {
        close_fd(fd);
        continue;
      }
      const bool valid = r.token == token && r.size >= 1 && r.size <= 4096 && r.rank >= 0 && r.rank < r.size &&
                         (size == 0 || r.size == size) && (seen.empty() || !seen[(size_t)r.rank]);
      if (!valid) {
        close_fd(fd);
        continue;
      }
      if (size == 0)
        size = r.size, fds.assign((size_t)size, -1), ports.assign((size_t)size, 0), seen.assign((size_t)size, false);
      fds[(size_t)r.rank] = fd;
      ports[(size_t)r.rank] = r.port;
      seen[(size_t)r.rank] = true;
      registered++;
    }
    for (int i = 0; i < size; i++)
      send_all(fds[(size_t)i], ports.data(), ports.size() * sizeof(uint16_t), stop, "rank " + std::to_string(i));
  } catch (const SocketError&) {
    // the ring's ranks see their registration fail or time out; nothing else to tell
  }
  stop = true;
  timer.join();
  for (int& fd : fds) close_fd(fd);
  close_fd(listener);
}

}  // namespace

rt::nccl::UniqueId create_unique_id() {
  IdBody body{};
  std::memcpy(body.magic, kMagic, sizeof kMagic);
  body.token = random_token();
  const int listener = listen_local(&body.root_port);
  std::thread(run_root, listener, body.token).detach();
  rt::nccl::UniqueId id{};
  static_assert(sizeof(IdBody) <= sizeof id.internal, "the id's body fits NCCL's 128 bytes");
  std::memcpy(id.internal, &body, sizeof body);
  return id;
}

bool parse_unique_id(const rt::nccl::UniqueId& id, IdBody* out) {
  std::memcpy(out, id.internal, sizeof *out);
  return std::memcmp(out->magic, kMagic, sizeof kMagic) == 0 && out->root_port != 0;
}

std::vector<uint16_t> register_with_root(const IdBody& id, int rank, int size, uint16_t my_port,
                                         const std::atomic<bool>& stop) {
  int fd = connect_local(id.root_port, stop);
  try {
    const Registration r{id.token, rank, size, my_port};
    send_all(fd, &r, sizeof r, stop, "the bootstrap root");
    std::vector<uint16_t> ports((size_t)size);
    recv_all(fd, ports.data(), ports.size() * sizeof(uint16_t), stop, "the bootstrap root");
    close_fd(fd);
    return ports;
  } catch (...) {
    close_fd(fd);
    throw;
  }
}

}  // namespace rt::nccl_standin
