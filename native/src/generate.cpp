// Autoregressive generation with a KV cache: the prompt is run once (prefill), then one token per step,
// each attending to the cached keys and values of every earlier position.
#include <algorithm>
#include <cmath>
#include <numeric>
#include "blas.h"
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

// A linear layer with its adapter, without dropout (inference).
template <typename T>
void Model<T>::infer(int l, int t, T* out, const T* inp, size_t w, size_t bias, int N, std::vector<T>& u) {
  const auto [in, outf] = LoraTable::shape(cfg_, t);
  linear_forward(out, inp, param(w), param(bias), N, in, outf);
  if (!lora_ || !lora_table_->targeted[t]) return;
  const LoraLayer& ll = lora_table_->layers[l];
  const int r = lora_cfg_.rank;
  gemm(false, true, N, r, in, T(1), inp, in, lora_->data() + ll.a[t], in, T(0), u.data(), r);
  gemm(false, true, N, outf, r, (T)lora_cfg_.scale(), u.data(), r, lora_->data() + ll.b[t], r, T(1), out, outf);
}

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
  std::vector<T> u(lora_ ? (size_t)maxn * lora_cfg_.rank : 0);
  const double scale = 1.0 / std::sqrt((double)D);

  std::vector<int32_t> out;
  std::vector<int32_t> tokens = g.prompt;
  int start = 0;
  for (int step = 0; step < g.max_new; step++) {
    const int n = (int)tokens.size();
    std::vector<int32_t> pos(n);
    std::iota(pos.begin(), pos.end(), start);
    embedding_forward(x.data(), tokens.data(), param(table_.embed), n, C, V);
    for (int l = 0; l < c.num_layers; l++) {
      const LayerOffsets& o = table_.layers[l];
      T* K = kcache[l].data() + (size_t)start * KV;
      T* Vc = vcache[l].data() + (size_t)start * KV;
      rmsnorm_forward(ln.data(), rstd.data(), x.data(), param(o.ln1), n, C, c.rms_norm_eps);
      infer(l, kQ, q.data(), ln.data(), o.wq, o.bq, n, u);
      infer(l, kK, K, ln.data(), o.wk, o.bk, n, u);
      infer(l, kV, Vc, ln.data(), o.wv, o.bv, n, u);
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
      infer(l, kO, tmp.data(), att.data(), o.wo, o.bo, n, u);
      add_inplace(x.data(), tmp.data(), (size_t)n * C);
      rmsnorm_forward(ln.data(), rstd.data(), x.data(), param(o.ln2), n, C, c.rms_norm_eps);
      infer(l, kGate, gate.data(), ln.data(), o.wg, o.bg, n, u);
      infer(l, kUp, up.data(), ln.data(), o.wu, o.bu, n, u);
      swiglu_forward(h.data(), gate.data(), up.data(), (size_t)n * I);
      infer(l, kDown, tmp.data(), h.data(), o.wd, o.bd, n, u);
      add_inplace(x.data(), tmp.data(), (size_t)n * C);
    }
    // Only the last position predicts the next token.
    const T* last = x.data() + (size_t)(n - 1) * C;
    rmsnorm_forward(ln.data(), rstd.data(), last, param(table_.final_norm), 1, C, c.rms_norm_eps);
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

template void Model<float>::infer(int, int, float*, const float*, size_t, size_t, int, std::vector<float>&);
template void Model<double>::infer(int, int, double*, const double*, size_t, size_t, int, std::vector<double>&);
template std::vector<int32_t> Model<float>::generate(const GenerateOptions&, std::vector<std::vector<float>>*);
template std::vector<int32_t> Model<double>::generate(const GenerateOptions&, std::vector<std::vector<double>>*);

}  // namespace rt
