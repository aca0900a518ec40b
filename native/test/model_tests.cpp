// The whole model: gradients against finite differences in double, packing, AdamW against a direct
// computation, generation with the KV cache against full recomputation, bf16 rounding.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <vector>
#include "host_batch.h"
#include "model.h"
#include "ops/cross_entropy.h"
#include "tensor_io.h"
#include "test_util.h"

using namespace rt;
using namespace rt::test;

namespace {

ModelConfig tiny_config(bool gqa, bool bias, bool tied) {
  ModelConfig c;
  c.vocab_size = 11;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = gqa ? 2 : 4;
  c.head_dim = 2;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 100;
  c.tie_word_embeddings = tied;
  c.qkv_bias = c.o_bias = c.mlp_bias = bias;
  return c;
}

// Random weights, with norm weights and biases moved away from 1 and 0 so their gradients matter.
template <typename T>
void randomize(Model<T>& m, uint64_t seed, double std) {
  m.init_random(seed, std);
  for (const ParamEntry& p : m.table().entries)
    if (p.shape.size() == 1) {
      const bool norm = p.name.find("norm") != std::string::npos;
      for (size_t i = 0; i < p.size; i++)
        m.params()[p.offset + i] = (T)((norm ? 1.0 : 0.0) + 0.3 * (2 * uniform01(seed, 9, p.offset + i) - 1));
    }
}

// head_rows: positions per chunk of the trained LM head (0: all logits at once, as the CPU backend chooses);
// outside_layers: only the embedding, final norm and head are differenced (what a change to the head reaches
// first; the embedding's gradient has passed through every layer's backward).
void whole_model_gradient_check(const ModelConfig& cfg, const HostBatch& hb, int head_rows = 0,
                                bool outside_layers = false) {
  Model<double> m(cfg);
  m.set_head_chunk_rows(head_rows);
  randomize(m, 42, 0.5);
  const Batch b = hb.view();
  m.zero_grad();
  const StepResult r = m.forward_backward(b, {true, false, 0});
  CHECK(r.targets > 0);
  std::vector<double> analytic(m.grads(), m.grads() + m.num_params());
  auto loss = [&] {
    const StepResult s = m.forward_backward(b, {false, false, 0});
    return s.loss_sum / s.targets;
  };
  double maxdiff = 0;
  for (const ParamEntry& p : m.table().entries)
    for (size_t i = 0; i < p.size && !(outside_layers && p.name.find("layers.") != std::string::npos); i++) {
      const double fd = finite_difference(loss, m.params()[p.offset + i]);
      const double a = analytic[p.offset + i], d = std::fabs(fd - a);
      CHECK(within_tolerance(a, fd, 1e-8, 1e-5),
            p.name << "[" << i << "]: finite difference " << fd << ", backward " << a);
      maxdiff = std::max(maxdiff, d);
    }
  note("params " + std::to_string(m.num_params()) + ", max |fd - backward| = " + [&] {
    char b[32];
    std::snprintf(b, sizeof b, "%.2e", maxdiff);
    return std::string(b);
  }());
}

}  // namespace

TEST(model_gradients_gqa_untied_no_bias) {
  const ModelConfig c = tiny_config(true, false, false);
  whole_model_gradient_check(c, packed_batch({{6}, {6}}, 6, c.vocab_size, 1));
}

TEST(model_gradients_bias_tied_head) {
  const ModelConfig c = tiny_config(false, true, true);
  whole_model_gradient_check(c, packed_batch({{7}}, 7, c.vocab_size, 2));
}

TEST(model_gradients_packed_three_segments_with_padding) {
  const ModelConfig c = tiny_config(true, true, false);
  whole_model_gradient_check(c, packed_batch({{3, 4, 2}, {5, 3}}, 11, c.vocab_size, 3));
}

// The head in chunks of 2 positions (the last one ragged): each chunk's weight gradient accumulates, each
// chunk's d(final norm) is written, and the logits of the whole batch never exist at once.
TEST(model_gradients_chunked_trained_head) {
  const ModelConfig c = tiny_config(true, true, false);
  whole_model_gradient_check(c, packed_batch({{3, 2}}, 5, c.vocab_size, 3), 2, true);
}

TEST(model_gradients_llama3_rope_scaling) {
  ModelConfig c = tiny_config(true, false, false);
  c.head_dim = 4;
  c.rope_theta = 5e5;
  c.rope_scaling = {true, 8, 1, 4, 8};
  whole_model_gradient_check(c, packed_batch({{8}}, 8, c.vocab_size, 4));
}

TEST(packed_row_losses_equal_examples_run_alone) {
  ModelConfig c = tiny_config(true, true, false);
  c.hidden_size = 32;
  c.head_dim = 8;
  c.intermediate_size = 48;
  c.vocab_size = 50;
  Model<float> m(c);
  randomize(m, 7, 0.2);
  const std::vector<int> lens = {5, 7, 3};
  const HostBatch packed = packed_batch({lens}, 17, c.vocab_size, 5);
  m.forward_backward(packed.view(), {false, false, 0});
  std::vector<float> packed_losses(m.token_losses(), m.token_losses() + 17);
  int start = 0;
  for (int len : lens) {
    HostBatch alone{1, len, {}, {}, {}, {}};
    alone.ids.assign(packed.ids.begin() + start, packed.ids.begin() + start + len);
    alone.labels.assign(packed.labels.begin() + start, packed.labels.begin() + start + len);
    alone.pos.assign(packed.pos.begin() + start, packed.pos.begin() + start + len);
    alone.seg.assign(len, 0);
    m.forward_backward(alone.view(), {false, false, 0});
    expect_close("segment at " + std::to_string(start), packed_losses.data() + start, m.token_losses(), len, 1e-5,
                 1e-5);
    start += len;
  }
  for (int t = start; t < 17; t++) CHECK(packed_losses[t] == 0, "padding position " << t << " has a loss");
}

TEST(loss_scale_normalises_over_a_global_batch) {
  // Two half-batches with loss_scale = 1/total targets give the gradient of the whole batch's mean.
  const ModelConfig c = tiny_config(true, false, false);
  Model<double> m(c);
  randomize(m, 8, 0.5);
  const HostBatch whole = packed_batch({{6}, {6}}, 6, c.vocab_size, 6);
  m.zero_grad();
  const StepResult all = m.forward_backward(whole.view(), {true, false, 0});
  std::vector<double> want(m.grads(), m.grads() + m.num_params());
  m.zero_grad();
  for (int r = 0; r < 2; r++) {
    HostBatch half{1, 6, {}, {}, {}, {}};
    half.ids.assign(whole.ids.begin() + 6 * r, whole.ids.begin() + 6 * r + 6);
    half.labels.assign(whole.labels.begin() + 6 * r, whole.labels.begin() + 6 * r + 6);
    half.pos.assign(whole.pos.begin() + 6 * r, whole.pos.begin() + 6 * r + 6);
    half.seg.assign(6, 1);
    m.forward_backward(half.view(), {true, false, 1.0 / all.targets});
  }
  expect_close("accumulated grads", m.grads(), want.data(), want.size(), 1e-12, 1e-9);
}

TEST(adamw_steps_equal_direct_update_rule) {
  const ModelConfig c = tiny_config(true, true, false);
  Model<float> m(c);
  randomize(m, 9, 0.5);
  const size_t n = m.num_params();
  std::vector<double> p(m.params(), m.params() + n), mo(n, 0), vo(n, 0);
  std::vector<bool> decay(n);
  for (const ParamEntry& e : m.table().entries)
    for (size_t i = 0; i < e.size; i++) decay[e.offset + i] = e.decay;
  const AdamWOptions o{1e-2, 0.9, 0.95, 1e-8, 0.1, 0};
  for (int step = 1; step <= 4; step++) {
    for (size_t i = 0; i < n; i++) m.grads()[i] = (float)(2 * uniform01(step, 3, i) - 1);
    const AdamWResult r = m.adamw_step(o);
    CHECK(r.step == step);
    for (size_t i = 0; i < n; i++) {
      const double g = m.grads()[i];
      mo[i] = 0.9 * mo[i] + 0.1 * g;
      vo[i] = 0.95 * vo[i] + 0.05 * g * g;
      const double mhat = mo[i] / (1 - std::pow(0.9, step)), vhat = vo[i] / (1 - std::pow(0.95, step));
      if (decay[i]) p[i] -= 1e-2 * 0.1 * p[i];
      p[i] -= 1e-2 * mhat / (std::sqrt(vhat) + 1e-8);
    }
    expect_close("params after step " + std::to_string(step), m.params(), p.data(), n, 1e-6, 1e-5);
  }
  // Norm weights and biases are not decayed: on fresh moments and a zero gradient they do not move at all,
  // while matrices shrink by exactly the decay factor.
  const ParamEntry* norm = m.table().find("model.norm.weight");
  const ParamEntry* wq = m.table().find("model.layers.0.self_attn.q_proj.weight");
  CHECK(norm && !norm->decay && wq && wq->decay);
  Model<double> fresh(c);
  randomize(fresh, 9, 0.5);
  const std::vector<double> before(fresh.params(), fresh.params() + n);
  fresh.zero_grad();
  fresh.adamw_step(o);
  for (const ParamEntry& e : fresh.table().entries) {
    const double factor = e.decay ? 1 - 1e-2 * 0.1 : 1.0;
    for (size_t i = 0; i < e.size; i++) {
      const double want = before[e.offset + i] * factor, got = fresh.params()[e.offset + i];
      CHECK(within_tolerance(got, want, 0, 1e-15), e.name << "[" << i << "]: " << got << " vs " << want);
    }
  }
}

TEST(adamw_clips_the_global_gradient_norm) {
  const ModelConfig c = tiny_config(true, false, false);
  Model<double> a(c), b(c);
  randomize(a, 10, 0.5);
  randomize(b, 10, 0.5);
  double sq = 0;
  for (size_t i = 0; i < a.num_params(); i++) {
    a.grads()[i] = 2 * uniform01(4, 4, i) - 1;
    sq += a.grads()[i] * a.grads()[i];
  }
  const double norm = std::sqrt(sq), max_norm = norm / 4;
  // b gets the clipped gradient explicitly and no clipping: both must land on the same weights.
  for (size_t i = 0; i < b.num_params(); i++) b.grads()[i] = a.grads()[i] * max_norm / (norm + 1e-6);
  const AdamWResult ra = a.adamw_step({1e-2, 0.9, 0.999, 1e-8, 0.0, max_norm});
  CHECK(std::fabs(ra.grad_norm - norm) < 1e-9 * norm, "reported norm " << ra.grad_norm << " vs " << norm);
  b.adamw_step({1e-2, 0.9, 0.999, 1e-8, 0.0, 0});
  // Adam is nearly scale invariant, so compare the moments, which are not.
  expect_close("first moment with clipping", a.adam_m(), b.adam_m(), a.num_params(), 1e-15, 1e-9);
  expect_close("weights with clipping", a.params(), b.params(), a.num_params(), 1e-15, 1e-9);
  // A norm under the threshold is not scaled.
  Model<double> d(c);
  randomize(d, 10, 0.5);
  for (size_t i = 0; i < d.num_params(); i++) d.grads()[i] = a.grads()[i];
  d.adamw_step({1e-2, 0.9, 0.999, 1e-8, 0.0, norm * 2});
  std::vector<double> m_unclipped(d.adam_m(), d.adam_m() + d.num_params());
  for (size_t i = 0; i < d.num_params(); i++) CHECK(std::fabs(m_unclipped[i] - 0.1 * a.grads()[i]) < 1e-15);
}

TEST(generation_with_kv_cache_equals_full_recompute) {
  ModelConfig c = tiny_config(true, true, false);
  c.hidden_size = 16;
  c.head_dim = 4;
  c.vocab_size = 23;
  Model<float> m(c);
  randomize(m, 11, 0.4);
  GenerateOptions g;
  g.prompt = {3, 7, 1, 9};
  g.max_new = 10;
  std::vector<std::vector<float>> step_logits;
  const std::vector<int32_t> out = m.generate(g, &step_logits);
  CHECK(out.size() == 10 && step_logits.size() == 10);
  std::vector<int32_t> seq = g.prompt;
  for (size_t k = 0; k < out.size(); k++) {
    const int T = (int)seq.size();
    HostBatch hb{1, T, seq, std::vector<int32_t>(T, kIgnoreIndex), {}, std::vector<int32_t>(T, 0)};
    hb.pos.resize(T);
    std::iota(hb.pos.begin(), hb.pos.end(), 0);
    m.forward_backward(hb.view(), {false, true, 0});
    const float* last = m.logits() + (size_t)(T - 1) * c.vocab_size;
    expect_close("step " + std::to_string(k) + " logits", step_logits[k].data(), last, c.vocab_size, 1e-5, 1e-4);
    CHECK(std::max_element(last, last + c.vocab_size) - last == out[k], "greedy token differs at step " << k);
    seq.push_back(out[k]);
  }
  // Stop on EOS: make the first generated token an EOS.
  g.eos = {out[0]};
  CHECK(m.generate(g).size() == 1);
  // Sampling is reproducible from the seed; top_p close to 0 keeps only the most likely token (greedy).
  g.eos.clear();
  g.temperature = 1.0;
  g.seed = 5;
  CHECK(m.generate(g) == m.generate(g));
  g.top_p = 1e-9;
  CHECK(m.generate(g) == out);
}

TEST(activations_are_allocated_once_per_shape) {
  const ModelConfig c = tiny_config(true, false, false);
  Model<float> m(c);
  randomize(m, 12, 0.5);
  const HostBatch hb = packed_batch({{4, 4}}, 8, c.vocab_size, 7);
  m.forward_backward(hb.view(), {true, true, 0});
  const size_t after_first = m.memory().activations;
  CHECK(after_first > 0);
  const float* logits_before = m.logits();
  for (int i = 0; i < 3; i++) m.forward_backward(hb.view(), {true, true, 0});
  CHECK(m.memory().activations == after_first && m.logits() == logits_before);
  CHECK(m.memory().params == m.num_params() * sizeof(float) && m.memory().optimizer == 2 * m.memory().params);
}

TEST(bad_token_id_names_the_op_and_position) {
  const ModelConfig c = tiny_config(true, false, false);
  Model<float> m(c);
  HostBatch hb = packed_batch({{4}}, 4, c.vocab_size, 8);
  hb.ids[2] = 999;
  std::string msg;
  try {
    m.forward_backward(hb.view(), {true, false, 0});
  } catch (const Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("forward_backward: batch [1 rows x 4 tokens]") == 0 &&
            msg.find("embedding_forward: token id 999") != std::string::npos,
        "message: " << msg);
}

TEST(bf16_rounds_to_nearest_even) {
  auto bits = [](float f) { return float_to_bf16(f); };
  CHECK(bits(1.0f) == 0x3F80);
  CHECK(bits(1.0f + std::ldexp(1.0f, -8)) == 0x3F80);                          // halfway, rounds to even (down)
  CHECK(bits(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3F82);                      // halfway, rounds to even (up)
  CHECK(bits(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 0x3F81);  // above halfway
  CHECK(bits(-2.5f) == 0xC020);
  CHECK(bf16_to_float(0x3F82) == 1.0f + std::ldexp(1.0f, -6));
  CHECK(std::isnan(bf16_to_float(bits(NAN))));
  CHECK(f16_to_float(0x3C00) == 1.0f && f16_to_float(0xC000) == -2.0f && f16_to_float(0x0001) == std::ldexp(1.0f, -24));
}

// Loaded weights are scanned in parallel: the index reported must be the first bad one, not any thread's.
TEST(first_non_finite_is_the_lowest_index_of_a_nan_or_inf) {
  std::vector<float> v(200000, 0.5f);
  CHECK(first_non_finite(v.data(), v.size()) == v.size());
  v[190000] = INFINITY;
  v[77777] = NAN;
  v[150000] = -INFINITY;
  CHECK(first_non_finite(v.data(), v.size()) == 77777);
  v[0] = -INFINITY;
  CHECK(first_non_finite(v.data(), v.size()) == 0);
  CHECK(first_non_finite(v.data(), 0) == 0);
}

TEST(gradient_buckets_cover_the_buffer_and_are_final_when_reported) {
  for (bool tied : {false, true}) {
    const ModelConfig c = tiny_config(true, true, tied);
    Model<double> m(c);
    randomize(m, 13, 0.5);
    const HostBatch hb = packed_batch({{5, 4}}, 9, c.vocab_size, 9);
    std::vector<std::pair<size_t, size_t>> ranges;
    std::vector<std::vector<double>> snapshots;
    StepOptions opts{true, false, 0, [&](size_t off, size_t n) {
                       ranges.push_back({off, n});
                       snapshots.emplace_back(m.grads() + off, m.grads() + off + n);
                     }};
    m.zero_grad();
    m.forward_backward(hb.view(), opts);
    CHECK((int)ranges.size() == m.grad_buckets());
    // Head first, embedding last, and together they tile the buffer exactly once.
    CHECK(ranges.front().first == m.table().final_norm && ranges.back().first == 0);
    std::vector<int> covered(m.num_params(), 0);
    for (size_t i = 0; i < ranges.size(); i++) {
      for (size_t k = 0; k < ranges[i].second; k++) covered[ranges[i].first + k]++;
      expect_close("bucket " + std::to_string(i) + " as reported vs final", snapshots[i].data(),
                   m.grads() + ranges[i].first, ranges[i].second, 0, 0);
    }
    CHECK(std::all_of(covered.begin(), covered.end(), [](int k) { return k == 1; }));
  }
}

TEST(chunked_head_gives_the_same_losses_and_gradients) {
  // Evaluation and LoRA run the LM head in chunks of positions; full training and kept logits all at once.
  ModelConfig c = tiny_config(true, false, false);
  c.vocab_size = 37;
  Model<double> m(c);
  randomize(m, 14, 0.5);
  const HostBatch hb = packed_batch({{40, 30}, {70}}, 70, c.vocab_size, 10);  // 140 positions: 3 chunks
  const StepResult chunked = m.forward_backward(hb.view(), {false, false, 0});
  std::vector<double> losses(m.token_losses(), m.token_losses() + 140);
  CHECK(m.logits() == nullptr, "chunked evaluation keeps no logits");
  const StepResult whole = m.forward_backward(hb.view(), {false, true, 0});
  CHECK(std::fabs(chunked.loss_sum - whole.loss_sum) < 1e-9 && chunked.targets == whole.targets);
  expect_close("per-position losses", losses.data(), m.token_losses(), 140, 1e-12, 1e-12);
  // The d(input) through a chunked head equals the unchunked one: compare LoRA gradients both ways.
  LoraConfig l;
  l.rank = 2;
  l.alpha = 2;
  l.targets = {"q_proj", "down_proj"};
  Model<double> a(c), b(c);
  randomize(a, 15, 0.5);
  randomize(b, 15, 0.5);
  a.enable_lora(l);
  b.enable_lora(l);
  for (size_t i = 0; i < a.num_lora_params(); i++) a.lora_params()[i] = b.lora_params()[i] = 0.1 * std::sin((double)i);
  a.zero_grad();
  b.zero_grad();
  a.forward_backward(hb.view(), {true, false, 0});  // chunked
  b.forward_backward(hb.view(), {true, true, 0});   // all logits kept
  expect_close("adapter grads, chunked vs whole head", a.grads(), b.grads(), a.num_trainable(), 1e-13, 1e-10);
}
