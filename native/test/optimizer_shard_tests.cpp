// ZeRO-1 in the core: ranks that each keep the AdamW moments of one piece of every gradient bucket, given
// the global gradient norm, update their pieces exactly as one unsharded model updates the whole.
#include <cmath>
#include <vector>
#include "model.h"
#include "test_util.h"

using namespace rt;
using namespace rt::test;

namespace {

ModelConfig shard_config() {
  ModelConfig c;
  c.vocab_size = 19;
  c.hidden_size = 12;
  c.intermediate_size = 20;
  c.num_layers = 2;
  c.num_heads = 3;
  c.num_kv_heads = 1;
  c.head_dim = 4;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 100;
  c.qkv_bias = true;
  return c;
}

// Rank r's piece of each bucket: the bucket cut into n near-equal parts (ranges may split parameters).
std::vector<std::pair<size_t, size_t>> shard_of(const std::vector<std::pair<size_t, size_t>>& buckets, int r, int n) {
  std::vector<std::pair<size_t, size_t>> out;
  for (const auto& [off, len] : buckets) {
    const size_t base = len / n, extra = len % n;
    const size_t start = r * base + std::min<size_t>(r, extra);
    const size_t size = base + ((size_t)r < extra ? 1 : 0);
    if (size) out.push_back({off + start, size});
  }
  return out;
}

}  // namespace

TEST(zero1_shards_update_their_pieces_as_the_whole_model_does) {
  const ModelConfig c = shard_config();
  const int n = 3, steps = 3;
  Model<double> whole(c);
  whole.init_random(5, 0.3);
  std::vector<std::unique_ptr<Model<double>>> ranks;
  for (int r = 0; r < n; r++) {
    ranks.push_back(std::make_unique<Model<double>>(c));
    ranks[r]->init_random(5, 0.3);
    ranks[r]->set_optimizer_shard(shard_of(whole.grad_bucket_ranges(), r, n));
  }
  AdamWOptions o;
  o.lr = 0.01;
  o.weight_decay = 0.1;    // matrices decay, norms and biases do not: pieces must keep their parameter's rule
  o.max_grad_norm = 0.05;  // small, so clipping (and the global norm) matters
  const size_t P = whole.num_params();
  for (int s = 0; s < steps; s++) {
    for (size_t i = 0; i < P; i++) whole.grads()[i] = std::sin(0.37 * (double)i + s);
    double sum_sq = 0;
    for (auto& m : ranks) {
      std::copy(whole.grads(), whole.grads() + P, m->grads());
      sum_sq += m->grad_sum_of_squares();
    }
    const AdamWResult w = whole.adamw_step(o);
    AdamWOptions sharded = o;
    sharded.grad_norm = std::sqrt(sum_sq);
    CHECK(std::fabs(sharded.grad_norm - w.grad_norm) <= 1e-12 * w.grad_norm);
    // the all-gather: each rank's pieces into every rank's weights
    std::vector<double> gathered(P);
    for (int r = 0; r < n; r++) {
      ranks[r]->adamw_step(sharded);
      for (const auto& [off, len] : ranks[r]->optimizer_shard())
        std::copy(ranks[r]->params() + off, ranks[r]->params() + off + len, gathered.begin() + off);
    }
    expect_close("weights after step " + std::to_string(s + 1), gathered.data(), whole.params(), P, 1e-14, 1e-12);
    for (auto& m : ranks) std::copy(gathered.begin(), gathered.end(), m->params());
  }
  // Each rank holds about a third of the moments.
  const MemoryReport full = whole.memory();
  size_t held = 0;
  for (auto& m : ranks) {
    const MemoryReport r = m->memory();
    CHECK(r.optimizer_unsharded == full.optimizer);
    CHECK(r.optimizer <= full.optimizer / n + 2 * sizeof(double) * whole.grad_buckets());
    held += r.optimizer;
  }
  CHECK(held == full.optimizer, "the shards together hold every moment once");
}

TEST(zero1_step_without_the_global_norm_is_refused) {
  Model<float> m(shard_config());
  m.set_optimizer_shard({{0, 10}});
  m.zero_grad();
  bool refused = false;
  try {
    m.adamw_step({});
  } catch (const std::exception& e) {
    refused = std::string(e.what()).find("global gradient norm") != std::string::npos;
  }
  CHECK(refused);
}

TEST(zero1_shard_outside_the_buffer_is_refused) {
  Model<float> m(shard_config());
  bool refused = false;
  try {
    m.set_optimizer_shard({{m.num_params() - 2, 5}});
  } catch (const std::exception& e) {
    refused = std::string(e.what()).find("leaves the trainable buffer") != std::string::npos;
  }
  CHECK(refused);
}
