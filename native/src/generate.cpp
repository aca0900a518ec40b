// Autoregressive generation with a KV cache: the prompt is run once (prefill), then one token per step,
// each attending to the cached keys and values of every earlier position. The layers are the model's own
// (Model::forward_positions), run over the cache; batched serving (batched_generate.cpp) runs the same
// forward over many sequences' caches at once.
#include <algorithm>
#include <cmath>
#include <numeric>
#include "error.h"
#include "model.h"
#include "random.h"
#include "sampling.h"

namespace rt {

template <typename T>
void Model<T>::forward_cached(int n, DecodeBuffers<T>& buf, const std::vector<CachedRun<T>>& caches,
                              const std::vector<AdapterRun<T>>* adapters) {
  for (const CachedRun<T>& run : caches)
    if (run.cache->filled + run.n > run.cache->capacity)
      fail("forward_cached", "a sequence would hold ", run.cache->filled + run.n, " positions, more than its capacity ",
           run.cache->capacity);
  auto layer = [&](int) { return buf.layer(n); };
  forward_positions(buf.ids->data(), n, layer, buf.rstdf->data(), buf.lnf->data(), nullptr, &caches,
                    adapters ? *adapters : own_adapters(n));
}

template <typename T>
std::vector<int32_t> Model<T>::generate(const GenerateOptions& g, std::vector<std::vector<T>>* step_logits) {
  const ModelConfig& c = cfg_;
  if (g.prompt.empty()) fail("generate", "the prompt is empty");
  if (g.max_new < 0) fail("generate", "max_new must be >= 0, got ", g.max_new);
  if (!(g.top_p > 0 && g.top_p <= 1)) fail("generate", "top_p must be in (0, 1], got ", g.top_p);
  const int C = c.hidden_size, V = c.vocab_size;
  KvCache<T> cache(c, (int)g.prompt.size() + g.max_new, ops_);
  // Sized for the prompt, the largest step.
  DecodeBuffers<T> buf;
  buf.reserve(c, (int)g.prompt.size(), lora_ ? lora_cfg_.rank : 0, ops_);
  const Buffer<T> logits = ops_.zeros(V);
  std::vector<CachedRun<T>> runs{{&cache, 0, 0}};  // one sequence, every position of a step
  std::vector<T> host_logits(V);
  std::vector<double> dlogits(V);

  std::vector<int32_t> out;
  std::vector<int32_t> tokens = g.prompt, pos;
  for (int step = 0; step < g.max_new; step++) {
    const int n = (int)tokens.size();
    pos.resize(n);
    std::iota(pos.begin(), pos.end(), cache.filled);
    ops_.upload_ints(buf.ids->data(), tokens.data(), n);
    ops_.upload_ints(buf.pos->data(), pos.data(), n);
    runs[0].n = n;
    forward_cached(n, buf, runs, nullptr);
    // Only the last position predicts the next token.
    head_logits(logits->data(), buf.lnf->data() + (size_t)(n - 1) * C, 1);
    ops_.download(host_logits.data(), logits->data(), V);
    if (step_logits) step_logits->push_back(host_logits);
    for (int v = 0; v < V; v++) dlogits[v] = host_logits[v];
    const int32_t next = sample_token(dlogits, g.temperature, g.top_p, uniform01(g.seed, kSampleStream, step));
    out.push_back(next);
    if (std::find(g.eos.begin(), g.eos.end(), next) != g.eos.end()) break;
    tokens.assign(1, next);
  }
  return out;
}

template void Model<float>::forward_cached(int, DecodeBuffers<float>&, const std::vector<CachedRun<float>>&,
                                           const std::vector<AdapterRun<float>>*);
template void Model<double>::forward_cached(int, DecodeBuffers<double>&, const std::vector<CachedRun<double>>&,
                                            const std::vector<AdapterRun<double>>*);
template std::vector<int32_t> Model<float>::generate(const GenerateOptions&, std::vector<std::vector<float>>*);
template std::vector<int32_t> Model<double>::generate(const GenerateOptions&, std::vector<std::vector<double>>*);

}  // namespace rt
