#pragma once
// The stand-in NCCL's bootstrap. ncclGetUniqueId starts a root in the calling process: a listener on
// 127.0.0.1 whose port and a random token go into the unique id. Each rank registers with the root (token,
// rank, ring size, the port it listens on for its ring neighbour); once every rank has, the root sends each the
// table of ports and ends. A registration without the id's token is dropped, so only holders of the id join.
#include <array>
#include <atomic>
#include <cstdint>
#include <vector>
#include "nccl_api.h"

namespace rt::nccl_standin {

constexpr size_t kTokenBytes = 16;
using Token = std::array<uint8_t, kTokenBytes>;

struct IdBody {
  char magic[8];  // kMagic: an id this library made
  Token token;
  uint16_t root_port;
};

// A new id, its root listening (and running on a thread of its own until every rank has registered).
rt::nccl::UniqueId create_unique_id();
// The id's body; false when the id was not made by this library.
bool parse_unique_id(const rt::nccl::UniqueId& id, IdBody* out);
// Registers (rank, size, my_port) with the root and returns every rank's port; throws SocketError.
std::vector<uint16_t> register_with_root(const IdBody& id, int rank, int size, uint16_t my_port,
                                         const std::atomic<bool>& stop);

}  // namespace rt::nccl_standin
