// Generation and serving on the CUDA backend against the same code on the CPU backend, fp32: the forward over
// KV caches in device memory (the caches themselves, position by position) and the batched multi-LoRA
// decoder with the base and two adapters decoded together, sequences joining between steps.
#include <memory>
#include <string>
#include <vector>
#include "batched_generate.h"
#include "cuda_backend.h"
#include "model.h"
#include "test_util.h"

using namespace rt;
using rt::test::expect_close;
using rt::test::fill_uniform;
using rt::test::note;

namespace {

ModelConfig tiny() {
  ModelConfig c;
  c.vocab_size = 61;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.rope_theta = 10000;
  c.qkv_bias = true;  // Qwen2's biases ride along with every projection the adapters touch
  return c;
}

std::vector<float> host(const Backend<float>& ops, const float* p, size_t n) {
  std::vector<float> v(n);
  ops.download(v.data(), p, n);
  return v;
}

void close(const std::string& what, const std::vector<float>& got, const float* want, double tol) {
  note(what + " max diff " + std::to_string(expect_close(what, got.data(), want, got.size(), tol, tol)));
}

LoraConfig adapter(int rank, double alpha, std::vector<std::string> targets) {
  LoraConfig l;
  l.rank = rank;
  l.alpha = alpha;
  l.targets = std::move(targets);
  return l;
}

// One forward over caches: `runs` gives each cache's new tokens, laid out one run after the other.
void forward(Model<float>& m, DecodeBuffers<float>& buf, std::vector<KvCache<float>*> caches,
             const std::vector<std::vector<int32_t>>& runs) {
  std::vector<int32_t> ids, pos;
  std::vector<CachedRun<float>> cached;
  for (size_t r = 0; r < runs.size(); r++) {
    cached.push_back({caches[r], (int)ids.size(), (int)runs[r].size()});
    for (size_t i = 0; i < runs[r].size(); i++) {
      ids.push_back(runs[r][i]);
      pos.push_back(caches[r]->filled + (int)i);
    }
  }
  const int n = (int)ids.size();
  buf.reserve(m.config(), n, 0, m.backend());
  m.backend().upload_ints(buf.ids->data(), ids.data(), n);
  m.backend().upload_ints(buf.pos->data(), pos.data(), n);
  m.forward_cached(n, buf, cached, nullptr);
}

}  // namespace

// Two sequences' caches filled by a prefill of each, then decode steps that extend both at once, and a run of
// several new positions after them: every layer's cached keys and values and each step's final norm match.
TEST(kv_cache_forward_on_the_cuda_backend_matches_the_cpu) {
  const ModelConfig c = tiny();
  const auto gpu = rt::cuda::make_cuda_backend(0);
  Model<float> on_gpu(c, *gpu), on_cpu(c);
  on_gpu.init_random(7, 0.2);
  on_cpu.init_random(7, 0.2);
  const int capacity = 12;
  KvCache<float> g0(c, capacity, *gpu), g1(c, capacity, *gpu);
  KvCache<float> c0(c, capacity, cpu_backend<float>()), c1(c, capacity, cpu_backend<float>());
  DecodeBuffers<float> gb, cb;
  const std::vector<std::vector<std::vector<int32_t>>> steps = {
      {{3, 9, 27, 4, 11}, {50, 2, 8}}, {{17}, {33}}, {{60}, {1}}, {{5, 6, 7}, {12}}};
  for (size_t s = 0; s < steps.size(); s++) {
    forward(on_gpu, gb, {&g0, &g1}, steps[s]);
    forward(on_cpu, cb, {&c0, &c1}, steps[s]);
    const int n = (int)(steps[s][0].size() + steps[s][1].size());
    close("step " + std::to_string(s) + " final norm", host(*gpu, gb.lnf->data(), (size_t)n * c.hidden_size),
          cb.lnf->data(), 1e-5);
  }
  CHECK(g0.filled == c0.filled && g1.filled == c1.filled && g0.filled == 10 && g1.filled == 6);
  const size_t KV = c.kv_dim();
  for (int l = 0; l < c.num_layers; l++)
    for (auto [g, cp, name] : {std::make_tuple(&g0, &c0, "0"), std::make_tuple(&g1, &c1, "1")}) {
      const size_t n = (size_t)cp->filled * KV;
      close(std::string("sequence ") + name + " layer " + std::to_string(l) + " cached keys",
            host(*gpu, g->k[l]->data(), n), cp->k[l]->data(), 1e-5);
      close(std::string("sequence ") + name + " layer " + std::to_string(l) + " cached values",
            host(*gpu, g->v[l]->data(), n), cp->v[l]->data(), 1e-5);
    }
}

// The base and two adapters (different ranks, targets and scales) decoded in one batch on the device, with a
// sequence that joins two steps late: the tokens and log-probabilities of the same decoder on the CPU.
TEST(batched_decoder_on_the_cuda_backend_matches_the_cpu_with_two_adapters) {
  const ModelConfig c = tiny();
  const auto gpu = rt::cuda::make_cuda_backend(0);
  auto on_gpu = std::make_shared<Model<float>>(c, *gpu);
  auto on_cpu = std::make_shared<Model<float>>(c);
  on_gpu->init_random(11, 0.2);
  on_cpu->init_random(11, 0.2);
  BatchedDecoder dg(on_gpu), dc(on_cpu);
  const LoraConfig l2 = adapter(2, 8, {"q_proj", "v_proj", "down_proj"});
  const LoraConfig l4 = adapter(4, 2, {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"});
  for (auto [id, l] : {std::make_pair(2, l2), std::make_pair(4, l4)}) {
    auto ag = dg.add_adapter(id, l), ac = dc.add_adapter(id, l);
    fill_uniform(ac->weights, 40 + id, 0.3);
    ag->weights = ac->weights;
  }
  struct Row {
    int adapter;
    std::vector<int32_t> prompt;
    int joins;  // the step it joins at
  };
  const std::vector<Row> rows = {{4, {3, 9, 1, 14}, 0}, {-1, {7, 2}, 0}, {2, {5, 5, 12}, 0}, {4, {40, 41}, 2}};
  const int max_new = 4;
  std::vector<std::vector<int32_t>> tokens(rows.size()), want(rows.size());
  std::vector<DecodeRow> pending(rows.size());
  for (int k = 0; k < max_new + 2; k++) {
    std::vector<DecodeRow> step;
    for (size_t r = 0; r < rows.size(); r++) {
      if (k == rows[r].joins) {
        dg.open((int)r, rows[r].adapter, 16);
        dc.open((int)r, rows[r].adapter, 16);
        pending[r] = {(int)r, rows[r].prompt};
        pending[r].top_logprobs = 3;
      }
      if (k >= rows[r].joins && (int)tokens[r].size() < max_new) step.push_back(pending[r]);
    }
    if (step.empty()) break;
    StepLogprobs lg, lc;
    const std::vector<int32_t> ng = dg.step(step, &lg), nc = dc.step(step, &lc);
    CHECK(ng == nc, "step " << k << ": the device decoded other tokens");
    close("step " + std::to_string(k) + " log p", lg.chosen, lc.chosen.data(), 1e-5);
    CHECK(lg.top_ids == lc.top_ids, "step " << k << ": other likeliest tokens");
    close("step " + std::to_string(k) + " top log p", lg.top_logprobs, lc.top_logprobs.data(), 1e-5);
    for (size_t i = 0; i < step.size(); i++) {
      const int r = step[i].sequence;
      tokens[r].push_back(ng[i]);
      pending[r].tokens = {ng[i]};
    }
  }
  for (size_t r = 0; r < rows.size(); r++) CHECK((int)tokens[r].size() == max_new, "row " << r << " unfinished");
  // The adapters changed what was decoded: the rows on an adapter are not the base's tokens.
  GenerateOptions g;
  g.prompt = rows[0].prompt;
  g.max_new = max_new;
  CHECK(on_cpu->generate(g) != tokens[0], "adapter 4's row decoded the base's tokens");
  // The decoder's base alone is the model's own generation over the device's KV cache.
  g.prompt = rows[1].prompt;
  CHECK(on_gpu->generate(g) == tokens[1], "the base row differs from generate on the device");
}

// Serving from a base rounded to bf16 (half its bytes): on the device the base stays bf16 in device memory and
// each layer is widened there; the rows of the base and of an adapter decode as the same decoder on the CPU.
TEST(batched_decoder_over_a_bf16_base_on_the_cuda_backend_matches_the_cpu) {
  const ModelConfig c = tiny();
  const auto gpu = rt::cuda::make_cuda_backend(0);
  auto on_gpu = std::make_shared<Model<float>>(c, *gpu);
  auto on_cpu = std::make_shared<Model<float>>(c);
  on_gpu->init_random(13, 0.2);
  on_cpu->init_random(13, 0.2);
  on_gpu->round_base_to_bf16();
  on_cpu->round_base_to_bf16();
  CHECK(on_gpu->base_is_bf16() && on_cpu->base_is_bf16());
  BatchedDecoder dg(on_gpu), dc(on_cpu);
  const LoraConfig l = adapter(4, 8, {"q_proj", "v_proj", "up_proj"});
  auto ag = dg.add_adapter(1, l), ac = dc.add_adapter(1, l);
  fill_uniform(ac->weights, 51, 0.3);
  ag->weights = ac->weights;
  for (int s = 0; s < 2; s++) dg.open(s, s == 0 ? 1 : -1, 12), dc.open(s, s == 0 ? 1 : -1, 12);
  std::vector<DecodeRow> step = {{0, {8, 3, 30, 2}}, {1, {19, 4}}};
  for (int k = 0; k < 4; k++) {
    StepLogprobs lg, lc;
    const std::vector<int32_t> ng = dg.step(step, &lg), nc = dc.step(step, &lc);
    CHECK(ng == nc, "step " << k << ": the device decoded other tokens");
    close("step " + std::to_string(k) + " log p", lg.chosen, lc.chosen.data(), 1e-5);
    for (size_t r = 0; r < step.size(); r++) step[r].tokens = {ng[r]};
  }
}
