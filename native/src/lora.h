#pragma once
// LoRA adapters as PEFT defines them: for a target linear y = W x + b, add scale * B A dropout(x), with
// A [r, in] and B [out, r]; scale = alpha / r (alpha / sqrt(r) with rsLoRA). B starts at 0, so the model
// with fresh adapters is the base model.
#include <array>
#include <cmath>
#include <string>
#include <vector>
#include "config.h"
#include "param_table.h"

namespace rt {

enum LoraTarget { kQ, kK, kV, kO, kGate, kUp, kDown, kNumTargets };
inline const char* lora_target_name(int t) {
  static const char* names[kNumTargets] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return names[t];
}

struct LoraConfig {
  int rank = 16;
  double alpha = 16;
  double dropout = 0;
  std::vector<std::string> targets;
  bool rslora = false;
  uint64_t seed = 0;
  // Keep the frozen base in bf16 (half the bytes); each layer's weights are widened to fp32 into a reused
  // scratch buffer right before its GEMMs, the head tile by tile.
  bool base_bf16 = false;
  double scale() const { return rslora ? alpha / std::sqrt((double)rank) : alpha / rank; }
};

// Offsets of A and B of each target of one layer in the adapter buffer (kAbsent when not targeted).
struct LoraLayer {
  std::array<size_t, kNumTargets> a, b;
  size_t begin = 0, end = 0;  // the layer's contiguous range
};

struct LoraTable {
  std::vector<ParamEntry> entries;  // PEFT names
  std::vector<LoraLayer> layers;
  std::array<bool, kNumTargets> targeted{};
  size_t total = 0;

  LoraTable(const ModelConfig& c, const LoraConfig& l);
  // (in, out) features of a target's linear layer
  static std::pair<int, int> shape(const ModelConfig& c, int t);
};

}  // namespace rt
