#include "param_table.h"

namespace rt {

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
    o.ln1 = add(p + "input_layernorm.weight", {C});
    o.wq = add(p + "self_attn.q_proj.weight", {Q, C});
    o.bq = bias(c.qkv_bias, "self_attn.q_proj.bias", Q);
    o.wk = add(p + "self_attn.k_proj.weight", {KV, C});
    o.bk = bias(c.qkv_bias, "self_attn.k_proj.bias", KV);
    o.wv = add(p + "self_attn.v_proj.weight", {KV, C});
    o.bv = bias(c.qkv_bias, "self_attn.v_proj.bias", KV);
    o.wo = add(p + "self_attn.o_proj.weight", {C, Q});
    o.bo = bias(c.o_bias, "self_attn.o_proj.bias", C);
    o.ln2 = add(p + "post_attention_layernorm.weight", {C});
    o.wg = add(p + "mlp.gate_proj.weight", {I, C});
    o.bg = bias(c.mlp_bias, "mlp.gate_proj.bias", I);
    o.wu = add(p + "mlp.up_proj.weight", {I, C});
    o.bu = bias(c.mlp_bias, "mlp.up_proj.bias", I);
    o.wd = add(p + "mlp.down_proj.weight", {C, I});
    o.bd = bias(c.mlp_bias, "mlp.down_proj.bias", C);
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
