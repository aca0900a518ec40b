// LoRA: adapter gradients against finite differences in double, step 0 equals the base model, merging
// equals base + adapter, the base stays frozen, generation sees the adapters.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <vector>
#include "model.h"
#include "ops/cross_entropy.h"
#include "test_util.h"

using namespace rt;
using namespace rt::test;

namespace {

ModelConfig lora_config_model(bool bias) {
  ModelConfig c;
  c.vocab_size = 13;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 2;
  c.rope_theta = 100;
  c.qkv_bias = c.o_bias = c.mlp_bias = bias;
  return c;
}

LoraConfig all_targets(int rank, double dropout) {
  LoraConfig l;
  l.rank = rank;
  l.alpha = 2.0 * rank;
  l.dropout = dropout;
  l.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  l.seed = 7;
  return l;
}

struct Rows {
  int rows, T;
  std::vector<int32_t> ids, labels, pos, seg;
  Batch view() const { return {rows, T, ids.data(), labels.data(), pos.data(), seg.data()}; }
};

Rows two_segments(int vocab, uint64_t seed) {
  Rows r{1, 9, {}, {}, {}, {}};
  for (int t = 0; t < 9; t++) {
    r.ids.push_back((int32_t)(uniform01(seed, 1, t) * vocab));
    r.labels.push_back(t == 0 || t == 5 ? kIgnoreIndex : (int32_t)(uniform01(seed, 2, t) * vocab));
    r.pos.push_back(t < 5 ? t : t - 5);
    r.seg.push_back(t < 5 ? 0 : 1);
  }
  return r;
}

template <typename T>
void random_adapters(Model<T>& m, uint64_t seed) {
  // B starts at 0; give it values so every adapter gradient is exercised.
  for (size_t i = 0; i < m.num_lora_params(); i++) m.lora_params()[i] = (T)(0.4 * (2 * uniform01(seed, 5, i) - 1));
}

void lora_gradient_check(double dropout) {
  const ModelConfig c = lora_config_model(true);
  Model<double> m(c);
  m.init_random(21, 0.5);
  m.enable_lora(all_targets(2, dropout));
  random_adapters(m, 22);
  const Rows rows = two_segments(c.vocab_size, 23);
  m.zero_grad();
  m.forward_backward(rows.view(), {true, false, 0});
  std::vector<double> analytic(m.grads(), m.grads() + m.num_trainable());
  // With dropout the loss must be the training forward (same masks): run forward_backward for it too.
  auto loss = [&] {
    const StepResult s = m.forward_backward(rows.view(), {dropout > 0, false, 0});
    return s.loss_sum / s.targets;
  };
  double maxdiff = 0;
  const size_t stride = dropout > 0 ? 3 : 1;  // the dropout case costs a training forward per evaluation
  for (const ParamEntry& p : m.trainable_entries())
    for (size_t i = 0; i < p.size; i += stride) {
      const double fd = finite_difference(loss, m.lora_params()[p.offset + i]);
      const double a = analytic[p.offset + i], d = std::fabs(fd - a);
      CHECK(within_tolerance(a, fd, 1e-8, 1e-5),
            p.name << "[" << i << "]: finite difference " << fd << ", backward " << a);
      maxdiff = std::max(maxdiff, d);
    }
  char b[96];
  std::snprintf(b, sizeof b, "adapter params %zu, max |fd - backward| = %.2e", m.num_trainable(), maxdiff);
  note(b);
}

}  // namespace

TEST(lora_gradients_match_finite_differences) { lora_gradient_check(0); }
TEST(lora_gradients_with_dropout_match_finite_differences) { lora_gradient_check(0.3); }

TEST(lora_step0_equals_base_and_base_is_frozen) {
  const ModelConfig c = lora_config_model(false);
  Model<float> m(c);
  m.init_random(31, 0.3);
  const Rows rows = two_segments(c.vocab_size, 32);
  m.forward_backward(rows.view(), {false, true, 0});
  const size_t n = rows.ids.size() * c.vocab_size;
  std::vector<float> base(m.logits(), m.logits() + n);
  CHECK(m.memory().grads == 0 && m.memory().optimizer == 0, "a forward alone allocates no training state");
  m.enable_lora(all_targets(4, 0));
  CHECK(m.memory().grads == 0, "the frozen base never gets gradients: " << m.memory().grads << " bytes");
  m.zero_grad();
  CHECK(m.memory().grads == m.num_lora_params() * sizeof(float),
        "only adapter gradients exist: " << m.memory().grads << " bytes");
  CHECK(m.memory().optimizer == 2 * m.num_lora_params() * sizeof(float));
  m.forward_backward(rows.view(), {false, true, 0});
  expect_close("logits right after enable_lora", m.logits(), base.data(), n, 0, 0);
  std::vector<float> before(m.params(), m.params() + m.num_params());
  std::vector<float> adapters_before(m.lora_params(), m.lora_params() + m.num_lora_params());
  m.zero_grad();
  m.forward_backward(rows.view(), {true, false, 0});
  m.adamw_step({1e-2, 0.9, 0.999, 1e-8, 0.0, 0});
  expect_close("base weights after a LoRA step", m.params(), before.data(), before.size(), 0, 0);
  // With B = 0 the first step moves B only (A's gradient is scale * B^T dout x = 0), as in PEFT.
  for (const ParamEntry& p : m.trainable_entries()) {
    size_t moved = 0;
    for (size_t i = 0; i < p.size; i++) moved += m.lora_params()[p.offset + i] != adapters_before[p.offset + i];
    const bool is_b = p.name.find("lora_B") != std::string::npos;
    CHECK(is_b ? moved == p.size : moved == 0, p.name << ": " << moved << " of " << p.size << " moved");
  }
}

TEST(merged_model_equals_base_plus_adapter) {
  const ModelConfig c = lora_config_model(true);
  Model<float> m(c);
  m.init_random(41, 0.3);
  LoraConfig l = all_targets(3, 0);
  l.rslora = true;
  m.enable_lora(l);
  random_adapters(m, 42);
  const Rows rows = two_segments(c.vocab_size, 43);
  m.forward_backward(rows.view(), {false, true, 0});
  const size_t n = rows.ids.size() * c.vocab_size;
  std::vector<float> with_adapter(m.logits(), m.logits() + n);
  // The merged weights in a plain model: same logits without adapters.
  m.merge_lora();
  Model<float> merged(c);
  std::copy(m.params(), m.params() + m.num_params(), merged.params());
  merged.forward_backward(rows.view(), {false, true, 0});
  expect_close("merged logits", merged.logits(), with_adapter.data(), n, 1e-5, 1e-4);
}

TEST(lora_buckets_tile_the_adapter_gradients) {
  const ModelConfig c = lora_config_model(false);
  Model<double> m(c);
  m.init_random(51, 0.3);
  LoraConfig l = all_targets(2, 0);
  l.targets = {"q_proj", "v_proj", "down_proj"};
  m.enable_lora(l);
  random_adapters(m, 52);
  std::vector<std::pair<size_t, size_t>> seen;
  std::vector<std::vector<double>> snapshots;
  StepOptions o{true, false, 0, [&](size_t off, size_t k) {
                  seen.push_back({off, k});
                  snapshots.emplace_back(m.grads() + off, m.grads() + off + k);
                }};
  m.zero_grad();
  m.forward_backward(two_segments(c.vocab_size, 53).view(), o);
  CHECK(seen == m.grad_bucket_ranges() && (int)seen.size() == c.num_layers);
  // Together the buckets cover every adapter gradient exactly once: no gap, no overlap.
  std::vector<int> covered(m.num_trainable(), 0);
  for (size_t i = 0; i < seen.size(); i++) {
    CHECK(seen[i].first + seen[i].second <= m.num_trainable(), "bucket " << i << " ends past the adapter gradients");
    for (size_t k = 0; k < seen[i].second; k++) covered[seen[i].first + k]++;
    expect_close("bucket as reported vs final", snapshots[i].data(), m.grads() + seen[i].first, seen[i].second, 0, 0);
  }
  CHECK(std::all_of(covered.begin(), covered.end(), [](int k) { return k == 1; }));
  CHECK(m.trainable_entries().front().name == "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  CHECK(m.trainable_entries().back().name == "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight");
}

TEST(generation_sees_the_adapters) {
  ModelConfig c = lora_config_model(true);
  c.vocab_size = 19;
  Model<float> m(c);
  m.init_random(61, 0.4);
  m.enable_lora(all_targets(2, 0.2));  // dropout is a training-time thing: generation must not apply it
  random_adapters(m, 62);
  GenerateOptions g;
  g.prompt = {2, 5, 7};
  g.max_new = 6;
  std::vector<std::vector<float>> step_logits;
  const std::vector<int32_t> out = m.generate(g, &step_logits);
  std::vector<int32_t> seq = g.prompt;
  for (size_t k = 0; k < out.size(); k++) {
    const int T = (int)seq.size();
    Rows r{1, T, seq, std::vector<int32_t>(T, kIgnoreIndex), std::vector<int32_t>(T), std::vector<int32_t>(T, 0)};
    std::iota(r.pos.begin(), r.pos.end(), 0);
    m.forward_backward(r.view(), {false, true, 0});
    expect_close("step logits", step_logits[k].data(), m.logits() + (size_t)(T - 1) * c.vocab_size, c.vocab_size, 1e-5,
                 1e-4);
    seq.push_back(out[k]);
  }
  // The same base without adapters generates from other logits: the match above is not the base's alone.
  Model<float> base(c);
  base.init_random(61, 0.4);
  std::vector<std::vector<float>> base_logits;
  base.generate(g, &base_logits);
  double moved = 0;
  for (int v = 0; v < c.vocab_size; v++)
    moved = max_keeping_nan(moved, std::fabs(base_logits[0][v] - step_logits[0][v]));
  CHECK(moved > 1e-3, "first-step logits with and without adapters differ by at most " << moved);
}

TEST(lora_rejects_unknown_targets) {
  Model<float> m(lora_config_model(false));
  LoraConfig l = all_targets(2, 0);
  l.targets = {"q_proj", "qkv"};
  std::string msg;
  try {
    m.enable_lora(l);
  } catch (const Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("unknown target module 'qkv'") != std::string::npos, msg);
}
