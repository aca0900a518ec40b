#pragma once
// The name -> offset table of the flat parameter buffer, in Hugging Face names and shapes.
// Parameters, gradients and both AdamW moments share these offsets, so one sweep covers each buffer.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>
#include "config.h"

namespace rt {

constexpr size_t kAbsent = SIZE_MAX;

struct ParamEntry {
  std::string name;
  size_t offset = 0, size = 0;  // in elements
  std::vector<int64_t> shape;
  bool decay = false;  // AdamW weight decay: matrices yes, norm weights and biases no
};

// Offsets of one decoder layer's tensors (kAbsent where the config has no such tensor).
struct LayerOffsets {
  size_t ln1, wq, bq, wk, bk, wv, bv, wo, bo, ln2, wg, bg, wu, bu, wd, bd;
};

struct ParamTable {
  // Hugging Face's order; the offsets are not monotonic in it (a layer's q, k, v and gate, up weights are adjacent).
  std::vector<ParamEntry> entries;
  size_t embed = kAbsent, final_norm = kAbsent, lm_head = kAbsent;  // lm_head absent when tied
  std::vector<LayerOffsets> layers;
  size_t total = 0;

  explicit ParamTable(const ModelConfig& cfg);
  const ParamEntry* find(const std::string& name) const;

 private:
  size_t add(const std::string& name, std::vector<int64_t> shape);
};

}  // namespace rt
