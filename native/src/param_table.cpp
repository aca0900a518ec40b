#include "param_table.h"

#include <algorithm>

namespace rt {

// A layer tensor's place in Hugging Face's order of a decoder layer's modules.
static int hf_rank(const std::string& name) {
  static const char* const order[] = {
      "input_layernorm.weight", "q_proj.weight",  "q_proj.bias",    "k_proj.weight", "k_proj.bias",
      "v_proj.weight",          "v_proj.bias",    "o_proj.weight",  "o_proj.bias",   "post_attention_layernorm.weight",
      "gate_proj.weight",       "gate_proj.bias", "up_proj.weight", "up_proj.bias",  "down_proj.weight",
      "down_proj.bias"};
  for (int i = 0; i < (int)(sizeof order / sizeof order[0]); i++) {
    const std::string suffix = order[i];
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) return i;
  }
  return 99;
}

size_t ParamTable::add(const std::string& name, std::vector<int64_t> shape) {
  size_t n = 1;
  for (int64_t d : shape) n *= (size_t)d;
  ParamEntry e{name, total, n, shape, shape.size() >= 2};
  entries.push_back(e);
  total += n;
  return e.offset;
}

ParamTable::ParamTable(const ModelConfig& c) {
  const int64_t C = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  embed = add("model.embed_tokens.weight", {c.vocab_size, C});
  for (int l = 0; l < c.num_layers; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerOffsets o;
    auto bias = [&](bool on, const std::string& name, int64_t n) { return on ? add(p + name, {n}) : kAbsent; };
    // Offsets: q, k and v weights adjacent, then their biases (likewise gate and up), so each group is one
    // stacked matrix (and one bias vector) that a backend multiplies in one GEMM. The list of entries keeps
    // Hugging Face's order (weights then bias of each module), which init draws and files follow.
    const size_t first = entries.size();
    o.ln1 = add(p + "input_layernorm.weight", {C});
    o.wq = add(p + "self_attn.q_proj.weight", {Q, C});
    o.wk = add(p + "self_attn.k_proj.weight", {KV, C});
    o.wv = add(p + "self_attn.v_proj.weight", {KV, C});
    o.bq = bias(c.qkv_bias, "self_attn.q_proj.bias", Q);
    o.bk = bias(c.qkv_bias, "self_attn.k_proj.bias", KV);
    o.bv = bias(c.qkv_bias, "self_attn.v_proj.bias", KV);
    o.wo = add(p + "self_attn.o_proj.weight", {C, Q});
    o.bo = bias(c.o_bias, "self_attn.o_proj.bias", C);
    o.ln2 = add(p + "post_attention_layernorm.weight", {C});
    o.wg = add(p + "mlp.gate_proj.weight", {I, C});
    o.wu = add(p + "mlp.up_proj.weight", {I, C});
    o.bg = bias(c.mlp_bias, "mlp.gate_proj.bias", I);
    o.bu = bias(c.mlp_bias, "mlp.up_proj.bias", I);
    o.wd = add(p + "mlp.down_proj.weight", {C, I});
    o.bd = bias(c.mlp_bias, "mlp.down_proj.bias", C);
    std::stable_sort(entries.begin() + first, entries.end(),
                     [&](const ParamEntry& a, const ParamEntry& b) { return hf_rank(a.name) < hf_rank(b.name); });
    layers.push_back(o);
  }
  final_norm = add("model.norm.weight", {C});
  if (!c.tie_word_embeddings) lm_head = add("lm_head.weight", {c.vocab_size, C});
}

const ParamEntry* ParamTable::find(const std::string& name) const {
  for (const ParamEntry& e : entries)
    if (e.name == name) return &e;
  return nullptr;
}

}  // namespace rt
