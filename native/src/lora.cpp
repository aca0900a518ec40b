#include "lora.h"
#include "error.h"

namespace rt {

std::pair<int, int> LoraTable::shape(const ModelConfig& c, int t) {
  const int C = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  switch (t) {
    case kQ: return {C, Q};
    case kK: return {C, KV};
    case kV: return {C, KV};
    case kO: return {Q, C};
    case kGate: return {C, I};
    case kUp: return {C, I};
    default: return {I, C};  // kDown
  }
}

LoraTable::LoraTable(const ModelConfig& c, const LoraConfig& l) {
  if (l.rank <= 0) fail("enable_lora", "rank must be positive, got ", l.rank);
  if (!(l.alpha > 0)) fail("enable_lora", "alpha must be positive, got ", l.alpha);
  if (!(l.dropout >= 0 && l.dropout < 1)) fail("enable_lora", "dropout must be in [0, 1), got ", l.dropout);
  if (l.targets.empty()) fail("enable_lora", "no target modules");
  for (const std::string& name : l.targets) {
    int found = -1;
    for (int t = 0; t < kNumTargets; t++)
      if (name == lora_target_name(t)) found = t;
    if (found < 0)
      fail("enable_lora", "unknown target module '", name,
           "' (q_proj k_proj v_proj o_proj gate_proj up_proj down_proj)");
    targeted[found] = true;
  }
  for (int layer = 0; layer < c.num_layers; layer++) {
    LoraLayer ll;
    ll.a.fill(kAbsent);
    ll.b.fill(kAbsent);
    ll.begin = total;
    const std::string prefix = "base_model.model.model.layers." + std::to_string(layer) + (".");
    for (int t = 0; t < kNumTargets; t++) {
      if (!targeted[t]) continue;
      const auto [in, out] = shape(c, t);
      const std::string module = prefix + (t <= kO ? "self_attn." : "mlp.") + lora_target_name(t);
      ll.a[t] = total;
      entries.push_back({module + ".lora_A.weight", total, (size_t)l.rank * in, {l.rank, in}, true});
      total += (size_t)l.rank * in;
      ll.b[t] = total;
      entries.push_back({module + ".lora_B.weight", total, (size_t)out * l.rank, {out, l.rank}, true});
      total += (size_t)out * l.rank;
    }
    ll.end = total;
    layers.push_back(ll);
  }
}

}  // namespace rt
