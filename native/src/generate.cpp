// Autoregressive generation with a KV cache: the prompt is run once (prefill), then one token per step,
// each attending to the cached keys and values of every earlier position. The layers are the model's own
// (Model::forward_positions), run with the cache.
#include <algorithm>
#include <cmath>
#include <numeric>
#include "error.h"
#include "model.h"
#include "ops/linear.h"
#include "random.h"
#include "sampling.h"

namespace rt {

template <typename T>
std::vector<int32_t> Model<T>::generate(const GenerateOptions& g, std::vector<std::vector<T>>* step_logits) {
  const ModelConfig& c = cfg_;
  if (g.prompt.empty()) fail("generate", "the prompt is empty");
  if (g.max_new < 0) fail("generate", "max_new must be >= 0, got ", g.max_new);
  if (!(g.top_p > 0 && g.top_p <= 1)) fail("generate", "top_p must be in (0, 1], got ", g.top_p);
  const int C = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), V = c.vocab_size;
  KvCache<T> cache(c, (int)g.prompt.size() + g.max_new);
  // Every layer runs in the same buffers, sized for the prompt (the largest step): nothing is kept between
  // layers but the residual stream x and the cache.
  const int maxn = (int)g.prompt.size();
  std::vector<T> x((size_t)maxn * C), ln((size_t)maxn * C), tmp((size_t)maxn * C), lnf((size_t)maxn * C),
      q((size_t)maxn * Q), att((size_t)maxn * Q), gate((size_t)maxn * I), up((size_t)maxn * I), h((size_t)maxn * I),
      rstd1(maxn), rstd2(maxn), rstdf(maxn), logits(V);
  std::vector<T> u(lora_ ? (size_t)maxn * lora_cfg_.rank : 0);
  std::vector<double> dlogits(V);

  std::vector<int32_t> out;
  std::vector<int32_t> tokens = g.prompt, pos;
  for (int step = 0; step < g.max_new; step++) {
    const int n = (int)tokens.size();
    pos.resize(n);
    std::iota(pos.begin(), pos.end(), cache.filled);
    auto layer = [&](int l) {
      LayerBuffers<T> io;
      io.n = n;
      io.positions = pos.data();
      io.res_in = io.res_mid = io.res_out = x.data();  // the residual stream, updated in place
      io.rstd1 = rstd1.data();
      io.rstd2 = rstd2.data();
      io.ln = ln.data();
      io.tmp = tmp.data();
      io.q = q.data();
      io.att = att.data();
      io.k = cache.k[l].data() + (size_t)cache.filled * c.kv_dim();
      io.v = cache.v[l].data() + (size_t)cache.filled * c.kv_dim();
      io.gate = gate.data();
      io.up = up.data();
      io.h = h.data();
      for (AdapterBuffers<T>& ab : io.adapters) ab.u = u.data();  // no dropout: x and keep stay null
      return io;
    };
    forward_positions(tokens.data(), n, layer, rstdf.data(), lnf.data(), nullptr, &cache);
    // Only the last position predicts the next token.
    head_logits(logits.data(), lnf.data() + (size_t)(n - 1) * C, 1);
    if (step_logits) step_logits->push_back(logits);
    for (int v = 0; v < V; v++) dlogits[v] = logits[v];
    const int32_t next = sample_token(dlogits, g.temperature, g.top_p, uniform01(g.seed, kSampleStream, step));
    out.push_back(next);
    if (std::find(g.eos.begin(), g.eos.end(), next) != g.eos.end()) break;
    tokens.assign(1, next);
  }
  return out;
}

template std::vector<int32_t> Model<float>::generate(const GenerateOptions&, std::vector<std::vector<float>>*);
template std::vector<int32_t> Model<double>::generate(const GenerateOptions&, std::vector<std::vector<double>>*);

}  // namespace rt
