// The LoRA forward against an independent computation: a model with adapters gives the logits of a plain
// model whose weights are W + (alpha / r) B A, computed here in double from the parameter and adapter tables
// (not through merge_lora or LoraConfig::scale, which the adapter forward itself uses).
#include <cmath>
#include <map>
#include <string>
#include <vector>
#include "model.h"
#include "ops/cross_entropy.h"
#include "test_util.h"

using namespace rt;
using namespace rt::test;

namespace {

ModelConfig scale_config() {
  ModelConfig c;
  c.vocab_size = 11;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 4;
  c.rope_theta = 100;
  return c;
}

// "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" -> "model.layers.0.self_attn.q_proj.weight"
std::string base_weight_of(const std::string& lora_name, const std::string& which) {
  const std::string prefix = "base_model.model.";
  const std::string suffix = ".lora_" + which + ".weight";
  CHECK(lora_name.rfind(prefix, 0) == 0 && lora_name.size() > suffix.size() &&
            lora_name.compare(lora_name.size() - suffix.size(), suffix.size(), suffix) == 0,
        "unexpected adapter tensor name " << lora_name);
  return lora_name.substr(prefix.size(), lora_name.size() - prefix.size() - suffix.size()) + ".weight";
}

// Logits of the adapter model and of the plain model holding W + factor * B A, for `factor` given here.
void check_scale(int rank, double alpha, bool rslora, double factor) {
  const ModelConfig c = scale_config();
  Model<double> lora(c);
  lora.init_random(5, 0.4);
  std::vector<double> base(lora.params(), lora.params() + lora.num_params());
  LoraConfig l;
  l.rank = rank;
  l.alpha = alpha;
  l.rslora = rslora;
  l.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  l.seed = 3;
  lora.enable_lora(l);
  for (size_t i = 0; i < lora.num_lora_params(); i++) lora.lora_params()[i] = 0.5 * (2 * uniform01(9, 1, i) - 1);

  std::map<std::string, const ParamEntry*> weights;
  for (const ParamEntry& e : lora.table().entries) weights[e.name] = &e;
  std::map<std::string, const ParamEntry*> a_of, b_of;
  for (const ParamEntry& e : lora.lora_table().entries) {
    if (e.name.find(".lora_A.") != std::string::npos) a_of[base_weight_of(e.name, "A")] = &e;
    if (e.name.find(".lora_B.") != std::string::npos) b_of[base_weight_of(e.name, "B")] = &e;
  }
  CHECK(a_of.size() == 7u * (size_t)c.num_layers && b_of.size() == a_of.size(), "adapters on every target");
  std::vector<double> merged = base;
  const double* ad = lora.lora_params();
  for (const auto& [name, A] : a_of) {
    const ParamEntry* B = b_of.at(name);
    const ParamEntry* W = weights.at(name);
    const int64_t out = W->shape[0], in = W->shape[1];
    CHECK(A->shape[0] == rank && A->shape[1] == in && B->shape[0] == out && B->shape[1] == rank, name);
    for (int64_t o = 0; o < out; o++)
      for (int64_t i = 0; i < in; i++) {
        double s = 0;
        for (int r = 0; r < rank; r++) s += ad[B->offset + o * rank + r] * ad[A->offset + r * in + i];
        merged[W->offset + o * in + i] += factor * s;
      }
  }

  const int T = 7;
  std::vector<int32_t> ids(T), labels(T), pos(T), seg(T, 0);
  for (int t = 0; t < T; t++) {
    ids[t] = (int32_t)(uniform01(4, 1, t) * c.vocab_size);
    labels[t] = t == 0 ? kIgnoreIndex : (int32_t)(uniform01(4, 2, t) * c.vocab_size);
    pos[t] = t;
  }
  const Batch batch{1, T, ids.data(), labels.data(), pos.data(), seg.data()};
  lora.forward_backward(batch, {false, true, 0});
  const size_t n = (size_t)T * c.vocab_size;
  std::vector<double> with_adapter(lora.logits(), lora.logits() + n);

  Model<double> plain(c);
  std::copy(merged.begin(), merged.end(), plain.params());
  plain.forward_backward(batch, {false, true, 0});
  expect_close("adapter logits vs W + factor B A", with_adapter.data(), plain.logits(), n, 1e-10, 1e-9);

  // The adapters move the logits far more than the tolerance: a wrong factor cannot hide in rounding.
  Model<double> unadapted(c);
  std::copy(base.begin(), base.end(), unadapted.params());
  unadapted.forward_backward(batch, {false, true, 0});
  double moved = 0;
  for (size_t i = 0; i < n; i++) moved = max_keeping_nan(moved, std::fabs(with_adapter[i] - unadapted.logits()[i]));
  CHECK(moved > 1e-2, "the adapters move the logits by at most " << moved);
}

}  // namespace

TEST(lora_forward_scales_adapters_by_alpha_over_rank) { check_scale(4, 6.0, false, 6.0 / 4); }

TEST(rslora_forward_scales_adapters_by_alpha_over_sqrt_rank) { check_scale(4, 6.0, true, 6.0 / std::sqrt(4.0)); }
