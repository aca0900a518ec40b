// What preference losses need from the model: per-position weights on the cross-entropy's gradient (the
// backward of sum_n w_n * loss_n, checked against finite differences in double on packed rows of pairs, full
// and LoRA), and a forward with the adapters switched off that is the frozen base's.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>
#include "host_batch.h"
#include "model.h"
#include "random.h"
#include "test_util.h"

using namespace rt;
using namespace rt::test;

namespace {

ModelConfig tiny_model() {
  ModelConfig c;
  c.vocab_size = 11;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 2;
  c.rope_theta = 100;
  return c;
}

LoraConfig rank2() {
  LoraConfig l;
  l.rank = 2;
  l.alpha = 4;
  l.targets = {"q_proj", "v_proj", "o_proj", "down_proj"};
  l.seed = 3;
  return l;
}

// Two rows of two pairs each (chosen, rejected as neighbouring segments), weights of both signs per
// segment as a preference loss gives them, float-representable so the double model sees them exactly.
struct WeightedBatch {
  HostBatch b;
  std::vector<float> w;
};

WeightedBatch pairs_batch(int vocab) {
  WeightedBatch x{packed_batch({{4, 5, 3, 4}, {6, 3, 5}}, 18, vocab, 41, 0.2), {}};
  x.w.resize(x.b.labels.size());
  for (size_t n = 0; n < x.w.size(); n++) x.w[n] = (float)(0.25 * (x.b.seg[n] % 5) - 0.625);
  return x;
}

// F = sum over positions of w_n * loss_n, from the per-position losses of a forward.
double weighted_loss(Model<double>& m, const WeightedBatch& x) {
  StepOptions o;
  o.backward = false;
  m.forward_backward(x.b.view(), o);
  double f = 0;
  for (size_t n = 0; n < x.w.size(); n++) f += x.w[n] * m.token_losses()[n];
  return f;
}

void check_weighted_gradient(Model<double>& m, double* params, size_t stride) {
  const WeightedBatch x = pairs_batch(m.config().vocab_size);
  m.zero_grad();
  StepOptions o;
  o.loss_scale = 1;
  o.label_weights = x.w.data();
  m.forward_backward(x.b.view(), o);
  const std::vector<double> analytic(m.grads(), m.grads() + m.num_trainable());
  double maxdiff = 0;
  size_t checked = 0;
  for (size_t i = 0; i < m.num_trainable(); i += stride, checked++) {
    const double fd = finite_difference([&] { return weighted_loss(m, x); }, params[i]);
    CHECK(within_tolerance(analytic[i], fd, 1e-8, 1e-5),
          "param " << i << ": finite difference " << fd << ", backward " << analytic[i]);
    maxdiff = std::max(maxdiff, std::fabs(fd - analytic[i]));
  }
  char line[96];
  std::snprintf(line, sizeof line, "%zu params checked, max |fd - backward| = %.2e", checked, maxdiff);
  note(line);
}

}  // namespace

TEST(preference_weighted_cross_entropy_backward_matches_finite_differences_full) {
  Model<double> m(tiny_model());
  m.init_random(5, 0.5);
  check_weighted_gradient(m, m.params(), 29);
}

TEST(preference_weighted_cross_entropy_backward_matches_finite_differences_lora) {
  Model<double> m(tiny_model());
  m.init_random(6, 0.5);
  m.enable_lora(rank2());
  for (size_t i = 0; i < m.num_lora_params(); i++) m.lora_params()[i] = 0.4 * (2 * uniform01(9, 5, i) - 1);
  check_weighted_gradient(m, m.lora_params(), 3);
}

TEST(preference_unit_weights_give_the_plain_gradient) {
  Model<double> m(tiny_model());
  m.init_random(7, 0.5);
  const WeightedBatch x = pairs_batch(m.config().vocab_size);
  const std::vector<float> ones(x.w.size(), 1.f);
  StepOptions o;
  o.loss_scale = 0.5;
  m.zero_grad();
  m.forward_backward(x.b.view(), o);
  const std::vector<double> plain(m.grads(), m.grads() + m.num_trainable());
  o.label_weights = ones.data();
  m.zero_grad();
  m.forward_backward(x.b.view(), o);
  expect_close("unit-weighted gradient", m.grads(), plain.data(), plain.size(), 0, 0);
}

TEST(preference_adapters_off_forward_is_the_base_model) {
  Model<double> m(tiny_model());
  m.init_random(8, 0.5);
  const WeightedBatch x = pairs_batch(m.config().vocab_size);
  StepOptions fwd;
  fwd.backward = false;
  m.forward_backward(x.b.view(), fwd);
  const std::vector<double> base(m.token_losses(), m.token_losses() + x.w.size());
  m.enable_lora(rank2());
  for (size_t i = 0; i < m.num_lora_params(); i++) m.lora_params()[i] = 0.4 * (2 * uniform01(10, 5, i) - 1);
  m.forward_backward(x.b.view(), fwd);
  double moved = 0;
  for (size_t n = 0; n < base.size(); n++) moved += std::fabs(m.token_losses()[n] - base[n]);
  CHECK(moved > 1e-3, "the adapters change the losses (moved " << moved << ")");
  fwd.adapters_off = true;
  m.forward_backward(x.b.view(), fwd);
  expect_close("losses with the adapters off", m.token_losses(), base.data(), base.size(), 0, 0);
  // The switch lasts one call: the next forward has its adapters again.
  fwd.adapters_off = false;
  m.forward_backward(x.b.view(), fwd);
  double again = 0;
  for (size_t n = 0; n < base.size(); n++) again += std::fabs(m.token_losses()[n] - base[n]);
  CHECK(std::fabs(again - moved) < 1e-12, "adapters back on after an adapters_off call");
  StepOptions bad;
  bad.adapters_off = true;
  bool refused = false;
  try {
    m.forward_backward(x.b.view(), bad);
  } catch (const Error& e) {
    refused = std::string(e.what()).find("adapters_off") != std::string::npos;
  }
  CHECK(refused, "a backward with the adapters off is refused");
}
