// Batched multi-LoRA serving runs the model's own layers: rows of the base and of two adapters (different
// ranks, targets and scales), decoded together, each give what a model built for that row alone gives, and
// that model is checked against weights merged here by hand (W + (alpha / r) B A), not by the code under test.
#include <cmath>
#include <memory>
#include <vector>
#include "batched_generate.h"
#include "model.h"
#include "test_util.h"

using namespace rt;
using namespace rt::test;

namespace {

ModelConfig decoder_config() {
  ModelConfig c;
  c.vocab_size = 23;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 4;
  c.rope_theta = 100;
  c.qkv_bias = true;  // Qwen2's biases ride along with every projection the adapters touch
  return c;
}

LoraConfig adapter(int rank, double alpha, std::vector<std::string> targets) {
  LoraConfig l;
  l.rank = rank;
  l.alpha = alpha;
  l.targets = std::move(targets);
  return l;
}

// Random A and B for an adapter's table, the same values for the decoder and the reference.
std::vector<float> random_adapter_weights(const LoraTable& t, uint64_t seed) {
  std::vector<float> w(t.total);
  fill_uniform(w, seed, 0.5);
  return w;
}

// The base with the adapter folded in: W[out, in] += (alpha / r) B[out, r] A[r, in], in double.
std::shared_ptr<Model<float>> merged_by_hand(const ModelConfig& c, const std::vector<float>& base, const LoraConfig& l,
                                             const std::vector<float>& weights) {
  auto m = std::make_shared<Model<float>>(c);
  std::copy(base.begin(), base.end(), m->params());
  const LoraTable t(c, l);
  const double scale = l.alpha / l.rank;
  for (int layer = 0; layer < c.num_layers; layer++) {
    const LayerOffsets& o = m->table().layers[layer];
    const size_t w_of[kNumTargets] = {o.wq, o.wk, o.wv, o.wo, o.wg, o.wu, o.wd};
    for (int target = 0; target < kNumTargets; target++) {
      if (!t.targeted[target]) continue;
      const auto [in, out] = LoraTable::shape(c, target);
      const float* A = weights.data() + t.layers[layer].a[target];
      const float* B = weights.data() + t.layers[layer].b[target];
      float* W = m->params() + w_of[target];
      for (int i = 0; i < out; i++)
        for (int j = 0; j < in; j++) {
          double acc = 0;
          for (int k = 0; k < l.rank; k++) acc += (double)B[(size_t)i * l.rank + k] * A[(size_t)k * in + j];
          W[(size_t)i * in + j] += (float)(scale * acc);
        }
    }
  }
  return m;
}

// log softmax of logits at token
double log_prob(const std::vector<float>& logits, int token) {
  double mx = -INFINITY, sum = 0;
  for (float z : logits) mx = std::max(mx, (double)z);
  for (float z : logits) sum += std::exp(z - mx);
  return logits[token] - mx - std::log(sum);
}

}  // namespace

TEST(batched_decoder_rows_of_two_adapters_and_the_base_match_each_model_alone) {
  const ModelConfig c = decoder_config();
  auto base = std::make_shared<Model<float>>(c);
  base->init_random(31, 0.3);
  const std::vector<float> base_weights(base->params(), base->params() + base->num_params());
  const LoraConfig l2 = adapter(2, 8, {"q_proj", "v_proj", "down_proj"});  // scale 4: alpha / r, not alpha
  const LoraConfig l4 = adapter(4, 2, {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"});
  BatchedDecoder decoder(base);
  auto a2 = decoder.add_adapter(2, l2);
  auto a4 = decoder.add_adapter(4, l4);
  a2->weights = random_adapter_weights(a2->table, 41);
  a4->weights = random_adapter_weights(a4->table, 42);

  struct Row {
    int adapter;
    std::vector<int32_t> prompt;
    std::shared_ptr<Model<float>> reference;
  };
  std::vector<Row> rows = {{4, {3, 9, 1, 14}, merged_by_hand(c, base_weights, l4, a4->weights)},
                           {-1, {7, 2}, base},
                           {2, {5, 5, 12}, merged_by_hand(c, base_weights, l2, a2->weights)}};
  const int max_new = 5;
  std::vector<std::vector<int32_t>> tokens(rows.size());
  std::vector<std::vector<float>> logprobs(rows.size());
  for (size_t r = 0; r < rows.size(); r++) decoder.open((int)r, rows[r].adapter, 16);
  std::vector<DecodeRow> step(rows.size());
  for (size_t r = 0; r < rows.size(); r++) step[r] = {(int)r, rows[r].prompt};
  for (int k = 0; k < max_new; k++) {
    StepLogprobs lp;
    const std::vector<int32_t> next = decoder.step(step, &lp);
    for (size_t r = 0; r < rows.size(); r++) {
      tokens[r].push_back(next[r]);
      logprobs[r].push_back(lp.chosen[r]);
      step[r].tokens = {next[r]};
    }
  }

  for (size_t r = 0; r < rows.size(); r++) {
    GenerateOptions g;
    g.prompt = rows[r].prompt;
    g.max_new = max_new;
    std::vector<std::vector<float>> step_logits;
    const std::vector<int32_t> want = rows[r].reference->generate(g, &step_logits);
    CHECK(tokens[r] == want, "row " << r << " (adapter " << rows[r].adapter << ") decoded other tokens");
    for (int k = 0; k < max_new; k++) {
      const double lp = log_prob(step_logits[k], want[k]);
      CHECK(within_tolerance(logprobs[r][k], lp, 1e-5, 1e-4),
            "row " << r << " step " << k << ": log p " << logprobs[r][k] << ", alone " << lp);
    }
  }
  // The adapters changed what was decoded: the match is not the base's alone.
  GenerateOptions g;
  g.prompt = rows[0].prompt;
  g.max_new = 1;
  std::vector<std::vector<float>> plain;
  base->generate(g, &plain);
  CHECK(std::fabs(log_prob(plain[0], tokens[0][0]) - logprobs[0][0]) > 1e-3);
}

TEST(batched_decoder_refuses_a_sequence_past_its_capacity) {
  auto base = std::make_shared<Model<float>>(decoder_config());
  base->init_random(3, 0.3);
  BatchedDecoder decoder(base);
  decoder.open(0, -1, 3);
  decoder.step({{0, {1, 2}}});
  bool refused = false;
  try {
    decoder.step({{0, {3, 4}}});
  } catch (const Error& e) {
    refused = std::string(e.what()).find("capacity 3") != std::string::npos;
  }
  CHECK(refused);
}
