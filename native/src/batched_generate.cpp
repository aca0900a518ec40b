#include "batched_generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include "error.h"
#include "ops/add.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"
#include "random.h"
#include "sampling.h"
#include "tensor_io.h"

namespace rt {

namespace {

// One layer's parameters are contiguous, from its first norm to the next layer's (or the final norm).
std::pair<size_t, size_t> layer_range(const ParamTable& t, int l) {
  const size_t end = l + 1 < (int)t.layers.size() ? t.layers[l + 1].ln1 : t.final_norm;
  return {t.layers[l].ln1, end};
}

void widen(float* dst, const uint16_t* src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = bf16_to_float(src[i]);
}

// Vocabulary rows of a bf16 head widened at a time: the head is the largest matrix, never widened whole.
constexpr int kHeadTileRows = 4096;

}  // namespace

BatchedDecoder::BatchedDecoder(std::shared_ptr<Model<float>> base) : base_(std::move(base)) {
  if (base_->lora_enabled()) fail("BatchedDecoder", "the base model already carries LoRA adapters; serve a plain base");
  inv_freq_ = rope_inv_freq(base_->config());
  if (base_->base_is_bf16()) {
    const ParamTable& t = base_->table();
    size_t widest = 0;
    for (int l = 0; l < (int)t.layers.size(); l++) {
      const auto [b, e] = layer_range(t, l);
      widest = std::max(widest, e - b);
    }
    stage_.resize(widest);
    stage_norm_.resize(base_->config().hidden_size);
    widen(stage_norm_.data(), base_->base_bf16() + t.final_norm, stage_norm_.size());
  }
}

void BatchedDecoder::stage_layer(int layer) {
  if (!base_->base_is_bf16() || staged_layer_ == layer) return;
  const auto [b, e] = layer_range(base_->table(), layer);
  widen(stage_.data(), base_->base_bf16() + b, e - b);
  staged_layer_ = layer;
}

std::shared_ptr<AdapterWeights> BatchedDecoder::add_adapter(int id, const LoraConfig& cfg) {
  auto a = std::make_shared<AdapterWeights>(base_->config(), cfg);
  std::lock_guard<std::mutex> lock(mu_);
  if (adapters_.count(id)) fail("add_adapter", "adapter id ", id, " is already registered");
  adapters_[id] = a;
  return a;
}

void BatchedDecoder::remove_adapter(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!adapters_.erase(id)) fail("remove_adapter", "no adapter with id ", id);
}

void BatchedDecoder::open(int sequence, int adapter, int capacity) {
  if (capacity <= 0) fail("open", "capacity must be positive, got ", capacity);
  std::shared_ptr<AdapterWeights> a;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (sequences_.count(sequence)) fail("open", "sequence ", sequence, " is already open");
    if (adapter >= 0) {
      auto it = adapters_.find(adapter);
      if (it == adapters_.end()) fail("open", "no adapter with id ", adapter);
      a = it->second;
    }
  }
  auto s = std::make_shared<DecodeSequence>(base_->config(), a, capacity);  // allocated outside the lock
  std::lock_guard<std::mutex> lock(mu_);
  sequences_[sequence] = s;
}

void BatchedDecoder::close(int sequence) {
  std::lock_guard<std::mutex> lock(mu_);
  sequences_.erase(sequence);
}

DecoderMemory BatchedDecoder::memory() const {
  DecoderMemory m;
  m.base_bytes_per_param = base_->base_is_bf16() ? 2 : (int)sizeof(float);
  m.base = base_->num_params() * m.base_bytes_per_param;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, a] : adapters_) m.adapters += a->weights.size() * sizeof(float);
  for (const auto& [id, s] : sequences_)
    for (int l = 0; l < (int)s->cache.k.size(); l++)
      m.caches += (s->cache.k[l].size() + s->cache.v[l].size()) * sizeof(float);
  return m;
}

namespace {

// Consecutive rows (after sorting by adapter) that share one adapter: one low-rank product for all of them.
struct AdapterRun {
  const AdapterWeights* adapter;
  int begin, n;  // positions [begin, begin + n) of the step
};

// Row r's log-softmax at its chosen token and, when it asked, at its likeliest tokens (ties: lower id first).
void report_logprobs(StepLogprobs& out, int r, const std::vector<double>& logits, int32_t chosen, int top) {
  const int V = (int)logits.size();
  const double mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (double z : logits) sum += std::exp(z - mx);
  const double log_z = mx + std::log(sum);
  out.chosen[r] = (float)(logits[chosen] - log_z);
  const int k = std::min(top, V);
  if (k <= 0) return;
  std::vector<int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  for (int i = 0; i < k; i++) {
    out.top_ids[(size_t)r * out.k + i] = order[i];
    out.top_logprobs[(size_t)r * out.k + i] = (float)(logits[order[i]] - log_z);
  }
}

}  // namespace

std::vector<int32_t> BatchedDecoder::step(const std::vector<DecodeRow>& rows, StepLogprobs* logprobs) {
  const ModelConfig& c = base_->config();
  const ParamTable& tab = base_->table();
  const int R = (int)rows.size();
  if (R == 0) return {};
  const int C = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim(), V = c.vocab_size;
  const int H = c.num_heads, KVH = c.num_kv_heads, D = c.head_dim;

  // Rows grouped by adapter so each adapter's product covers its rows at once; outputs keep the caller's order.
  std::vector<std::shared_ptr<DecodeSequence>> seqs(R);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int r = 0; r < R; r++) {
      auto it = sequences_.find(rows[r].sequence);
      if (it == sequences_.end()) fail("step", "row ", r, ": no open sequence ", rows[r].sequence);
      seqs[r] = it->second;
    }
  }
  std::vector<int> order(R);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return seqs[a]->adapter.get() < seqs[b]->adapter.get(); });
  std::vector<int> begin(R);
  std::vector<int32_t> ids, pos;
  for (int r : order) {
    const DecodeRow& row = rows[r];
    DecodeSequence& s = *seqs[r];
    if (row.tokens.empty()) fail("step", "sequence ", row.sequence, " has no new tokens");
    if (s.cache.filled + (int)row.tokens.size() > s.cache.capacity)
      fail("step", "sequence ", row.sequence, " would hold ", s.cache.filled + row.tokens.size(),
           " positions, more than its capacity ", s.cache.capacity);
    if (!(row.top_p > 0 && row.top_p <= 1)) fail("step", "top_p must be in (0, 1], got ", row.top_p);
    if (row.top_logprobs < 0) fail("step", "top_logprobs must be >= 0, got ", row.top_logprobs);
    begin[r] = (int)ids.size();
    for (size_t i = 0; i < row.tokens.size(); i++) {
      ids.push_back(row.tokens[i]);
      pos.push_back(s.cache.filled + (int)i);
    }
  }
  std::vector<AdapterRun> runs;
  for (int r : order) {
    const AdapterWeights* a = seqs[r]->adapter.get();
    const int n = (int)rows[r].tokens.size();
    if (!runs.empty() && runs.back().adapter == a) runs.back().n += n;
    else runs.push_back({a, begin[r], n});
  }
  const int N = (int)ids.size();
  int max_rank = 0;
  for (const AdapterRun& run : runs)
    if (run.adapter) max_rank = std::max(max_rank, run.adapter->cfg.rank);

  std::vector<float> x((size_t)N * C), ln((size_t)N * C), tmp((size_t)N * C), q((size_t)N * Q), k((size_t)N * KV),
      v((size_t)N * KV), att((size_t)N * Q), gate((size_t)N * I), up((size_t)N * I), h((size_t)N * I), rstd(N),
      u((size_t)N * max_rank);
  // fp32 weights: the base's own, or (bf16 base) the staging of the layer being computed.
  const bool bf16 = base_->base_is_bf16();
  const float* W = base_->params();
  auto param = [&](size_t off) -> const float* {
    if (off == kAbsent) return nullptr;
    if (!bf16) return W + off;
    if (off == tab.final_norm) return stage_norm_.data();
    const auto [b, e] = layer_range(tab, staged_layer_);
    if (off < b || off >= e) fail("step", "bf16 base: parameter at offset ", off, " is not in the staged layer");
    return stage_.data() + (off - b);
  };
  // out = inp W^T + b over every position (one GEMM), then each adapter run's scale * (inp A^T) B^T.
  auto project = [&](int l, int t, float* out, const float* inp, size_t w, size_t b) {
    const auto [in, outf] = LoraTable::shape(c, t);
    linear_forward(out, inp, param(w), param(b), N, in, outf);
    for (const AdapterRun& run : runs) {
      const AdapterWeights* a = run.adapter;
      if (!a || !a->table.targeted[t]) continue;
      const LoraLayer& ll = a->table.layers[l];
      const int r = a->cfg.rank;
      const float* xa = inp + (size_t)run.begin * in;
      gemm(false, true, run.n, r, in, 1.0f, xa, in, a->weights.data() + ll.a[t], in, 0.0f, u.data(), r);
      gemm(false, true, run.n, outf, r, (float)a->cfg.scale(), u.data(), r, a->weights.data() + ll.b[t], r, 1.0f,
           out + (size_t)run.begin * outf, outf);
    }
  };

  if (bf16)
    for (int n = 0; n < N; n++) {
      if (ids[n] < 0 || ids[n] >= V) fail("step", "token ", ids[n], " outside vocab [0,", V, ")");
      widen(x.data() + (size_t)n * C, base_->base_bf16() + tab.embed + (size_t)ids[n] * C, C);
    }
  else embedding_forward(x.data(), ids.data(), param(tab.embed), N, C, V);
  for (int l = 0; l < c.num_layers; l++) {
    stage_layer(l);
    const LayerOffsets& o = tab.layers[l];
    rmsnorm_forward(ln.data(), rstd.data(), x.data(), param(o.ln1), N, C, c.rms_norm_eps);
    project(l, kQ, q.data(), ln.data(), o.wq, o.bq);
    project(l, kK, k.data(), ln.data(), o.wk, o.bk);
    project(l, kV, v.data(), ln.data(), o.wv, o.bv);
    rope_forward(q.data(), pos.data(), inv_freq_.data(), N, H, D);
    rope_forward(k.data(), pos.data(), inv_freq_.data(), N, KVH, D);
    for (int r = 0; r < R; r++) {
      KvCache<float>& cache = seqs[r]->cache;
      const int n = (int)rows[r].tokens.size(), b = begin[r];
      std::copy(k.begin() + (size_t)b * KV, k.begin() + (size_t)(b + n) * KV,
                cache.k[l].begin() + (size_t)cache.filled * KV);
      std::copy(v.begin() + (size_t)b * KV, v.begin() + (size_t)(b + n) * KV,
                cache.v[l].begin() + (size_t)cache.filled * KV);
      cached_attention(att.data() + (size_t)b * Q, q.data() + (size_t)b * Q, cache.k[l].data(), cache.v[l].data(),
                       cache.filled, n, H, KVH, D);
    }
    project(l, kO, tmp.data(), att.data(), o.wo, o.bo);
    add(x.data(), x.data(), tmp.data(), (size_t)N * C);
    rmsnorm_forward(ln.data(), rstd.data(), x.data(), param(o.ln2), N, C, c.rms_norm_eps);
    project(l, kGate, gate.data(), ln.data(), o.wg, o.bg);
    project(l, kUp, up.data(), ln.data(), o.wu, o.bu);
    swiglu_forward(h.data(), gate.data(), up.data(), (size_t)N * I);
    project(l, kDown, tmp.data(), h.data(), o.wd, o.bd);
    add(x.data(), x.data(), tmp.data(), (size_t)N * C);
  }
  for (int r = 0; r < R; r++) seqs[r]->cache.filled += (int)rows[r].tokens.size();

  // Only each row's last position predicts its next token: the final norm and the head over R positions.
  std::vector<float> last((size_t)R * C), lnf((size_t)R * C), logits((size_t)R * V);
  for (int r = 0; r < R; r++) {
    const size_t p = (size_t)(begin[r] + rows[r].tokens.size() - 1);
    std::copy(x.begin() + p * C, x.begin() + (p + 1) * C, last.begin() + (size_t)r * C);
  }
  rmsnorm_forward(lnf.data(), rstd.data(), last.data(), param(tab.final_norm), R, C, c.rms_norm_eps);
  const size_t head = c.tie_word_embeddings ? tab.embed : tab.lm_head;
  if (!bf16) {
    linear_forward(logits.data(), lnf.data(), W + head, (const float*)nullptr, R, C, V);
  } else {
    const int tile = std::min(kHeadTileRows, V);
    std::vector<float> w((size_t)tile * C), part((size_t)R * tile);
    for (int v0 = 0; v0 < V; v0 += tile) {
      const int rows_here = std::min(tile, V - v0);
      widen(w.data(), base_->base_bf16() + head + (size_t)v0 * C, (size_t)rows_here * C);
      linear_forward(part.data(), lnf.data(), w.data(), (const float*)nullptr, R, C, rows_here);
      for (int r = 0; r < R; r++)
        std::copy(part.begin() + (size_t)r * rows_here, part.begin() + (size_t)(r + 1) * rows_here,
                  logits.begin() + (size_t)r * V + v0);
    }
  }

  std::vector<int32_t> next(R);
  std::vector<double> row_logits(V);
  if (logprobs) {
    logprobs->k = 0;
    for (const DecodeRow& row : rows) logprobs->k = std::max(logprobs->k, std::min(row.top_logprobs, V));
    logprobs->chosen.assign(R, 0.0f);
    logprobs->top_ids.assign((size_t)R * logprobs->k, -1);
    logprobs->top_logprobs.assign((size_t)R * logprobs->k, 0.0f);
  }
  for (int r = 0; r < R; r++) {
    const DecodeRow& row = rows[r];
    for (int i = 0; i < V; i++) row_logits[i] = logits[(size_t)r * V + i];
    next[r] = sample_token(row_logits, row.temperature, row.top_p, uniform01(row.seed, kSampleStream, row.draw));
    if (logprobs) report_logprobs(*logprobs, r, row_logits, next[r], row.top_logprobs);
  }
  return next;
}

}  // namespace rt
