#pragma once
// The keys and values generation keeps per layer, so each new token attends to every earlier position
// without recomputing it. They live in the model's backend memory, beside its weights.
#include <vector>

#include "backend.h"
#include "config.h"

namespace rt {

template <typename T>
struct KvCache {
  int capacity = 0;             // positions allocated
  int filled = 0;               // positions written, the next new one goes there
  std::vector<Buffer<T>> k, v;  // per layer (capacity, KVH*D); keys after RoPE

  KvCache(const ModelConfig& c, int positions, const Backend<T>& ops) : capacity(positions) {
    for (int l = 0; l < c.num_layers; l++) {
      k.push_back(ops.zeros((size_t)positions * c.kv_dim()));
      v.push_back(ops.zeros((size_t)positions * c.kv_dim()));
    }
  }
  size_t bytes() const {
    size_t n = 0;
    for (size_t l = 0; l < k.size(); l++) n += k[l]->size() + v[l]->size();
    return n * sizeof(T);
  }
};

}  // namespace rt
