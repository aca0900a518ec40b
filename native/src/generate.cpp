// Autoregressive generation with a KV cache: the prompt is run once (prefill), then one token per step,
// each attending to the cached keys and values of every earlier position.
#include <algorithm>
#include <cmath>
#include <numeric>
#include "error.h"
#include "model.h"
#include "ops/add.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"
#include "random.h"

namespace rt {

namespace {

// softmax(logits / temperature), restricted to the smallest set of top tokens whose mass reaches top_p.
int32_t sample_token(const std::vector<double>& logits, double temperature, double top_p, double u) {
  const int V = (int)logits.size();
  if (temperature <= 0) return (int32_t)(std::max_element(logits.begin(), logits.end()) - logits.begin());
  const double mx = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(V);
  double sum = 0;
  for (int i = 0; i < V; i++) sum += p[i] = std::exp((logits[i] - mx) / temperature);
  std::vector<int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
  int keep = 0;
  double mass = 0;
  while (keep < V && (keep == 0 || mass < top_p * sum)) mass += p[order[keep++]];
  double target = u * mass;
  for (int i = 0; i < keep; i++) {
    target -= p[order[i]];
    if (target <= 0) return order[i];
  }
  return order[keep - 1];
}

}  // namespace

template <typename T>
std::vector<int32_t> Model<T>::generate(const GenerateOptions& g, std::vector<std::vector<T>>* step_logits) {
  const ModelConfig& c = cfg_;
  if (g.prompt.empty()) fail("generate", "the prompt is empty");
  if (g.max_new < 0) fail("generate", "max_new must be >= 0, got ", g.max_new);
  if (!(g.top_p > 0 && g.top_p <= 1)) fail("generate", "top_p must be in (0, 1], got ", g.top_p);
  const int C = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim(), D = c.head_dim;
  const int H = c.num_heads, group = c.num_heads / c.num_kv_heads, V = c.vocab_size;
  const int capacity = (int)g.prompt.size() + g.max_new;
  std::vector<std::vector<T>> kcache(c.num_layers, std::vector<T>((size_t)capacity * KV));
  std::vector<std::vector<T>> vcache(c.num_layers, std::vector<T>((size_t)capacity * KV));
  const int maxn = (int)g.prompt.size();
  std::vector<T> x((size_t)maxn * C), ln((size_t)maxn * C), tmp((size_t)maxn * C), q((size_t)maxn * Q),
      att((size_t)maxn * Q), gate((size_t)maxn * I), up((size_t)maxn * I), h((size_t)maxn * I), rstd(maxn), logits(V);
  std::vector<double> dlogits(V);
  const double scale = 1.0 / std::sqrt((double)D);

  std::vector<int32_t> out;
  std::vector<int32_t> tokens = g.prompt;
  int start = 0;
  for (int step = 0; step < g.max_new; step++) {
    const int n = (int)tokens.size();
    std::vector<int32_t> pos(n);
    std::iota(pos.begin(), pos.end(), start);
    embedding_forward(x.data(), tokens.data(), at(params_, table_.embed), n, C, V);
    for (int l = 0; l < c.num_layers; l++) {
      const LayerOffsets& o = table_.layers[l];
      T* K = kcache[l].data() + (size_t)start * KV;
      T* Vc = vcache[l].data() + (size_t)start * KV;
      rmsnorm_forward(ln.data(), rstd.data(), x.data(), at(params_, o.ln1), n, C, c.rms_norm_eps);
      linear_forward(q.data(), ln.data(), at(params_, o.wq), at(params_, o.bq), n, C, Q);
      linear_forward(K, ln.data(), at(params_, o.wk), at(params_, o.bk), n, C, KV);
      linear_forward(Vc, ln.data(), at(params_, o.wv), at(params_, o.bv), n, C, KV);
      rope_forward(q.data(), pos.data(), inv_freq_.data(), n, H, D);
      rope_forward(K, pos.data(), inv_freq_.data(), n, c.num_kv_heads, D);
#pragma omp parallel
      {
        std::vector<double> scores(capacity);
#pragma omp for schedule(static)
        for (int task = 0; task < n * H; task++) {
          const int i = task / H, hh = task % H, kvh = hh / group;
          const int p = start + i;  // attends to cache positions 0..p
          const T* qi = q.data() + (size_t)i * Q + (size_t)hh * D;
          double mx = -INFINITY;
          for (int j = 0; j <= p; j++) {
            const T* kj = kcache[l].data() + (size_t)j * KV + (size_t)kvh * D;
            double s = 0;
            for (int d = 0; d < D; d++) s += (double)qi[d] * kj[d];
            scores[j] = s * scale;
            mx = std::max(mx, scores[j]);
          }
          double sum = 0;
          for (int j = 0; j <= p; j++) sum += scores[j] = std::exp(scores[j] - mx);
          T* ai = att.data() + (size_t)i * Q + (size_t)hh * D;
          for (int d = 0; d < D; d++) {
            double acc = 0;
            for (int j = 0; j <= p; j++) acc += scores[j] * vcache[l][(size_t)j * KV + (size_t)kvh * D + d];
            ai[d] = (T)(acc / sum);
          }
        }
      }
      linear_forward(tmp.data(), att.data(), at(params_, o.wo), at(params_, o.bo), n, Q, C);
      add_inplace(x.data(), tmp.data(), (size_t)n * C);
      rmsnorm_forward(ln.data(), rstd.data(), x.data(), at(params_, o.ln2), n, C, c.rms_norm_eps);
      linear_forward(gate.data(), ln.data(), at(params_, o.wg), at(params_, o.bg), n, C, I);
      linear_forward(up.data(), ln.data(), at(params_, o.wu), at(params_, o.bu), n, C, I);
      swiglu_forward(h.data(), gate.data(), up.data(), (size_t)n * I);
      linear_forward(tmp.data(), h.data(), at(params_, o.wd), at(params_, o.bd), n, I, C);
      add_inplace(x.data(), tmp.data(), (size_t)n * C);
    }
    // Only the last position predicts the next token.
    const T* last = x.data() + (size_t)(n - 1) * C;
    rmsnorm_forward(ln.data(), rstd.data(), last, at(params_, table_.final_norm), 1, C, c.rms_norm_eps);
    linear_forward(logits.data(), ln.data(), lm_head(), (const T*)nullptr, 1, C, V);
    if (step_logits) step_logits->push_back(logits);
    for (int v = 0; v < V; v++) dlogits[v] = logits[v];
    const int32_t next = sample_token(dlogits, g.temperature, g.top_p, uniform01(g.seed, 0x5a3b1e, step));
    out.push_back(next);
    if (std::find(g.eos.begin(), g.eos.end(), next) != g.eos.end()) break;
    start += n;
    tokens.assign(1, next);
  }
  return out;
}

template std::vector<int32_t> Model<float>::generate(const GenerateOptions&, std::vector<std::vector<float>>*);
template std::vector<int32_t> Model<double>::generate(const GenerateOptions&, std::vector<std::vector<double>>*);

}  // namespace rt
