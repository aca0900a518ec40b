#include "batched_generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include "error.h"
#include "random.h"
#include "sampling.h"

namespace rt {

// The shared-weights model refuses a base that carries adapters of its own.
BatchedDecoder::BatchedDecoder(std::shared_ptr<Model<float>> base)
    : base_(std::move(base)), layers_(*base_, Model<float>::SharedWeights{}) {}

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
  // allocated outside the lock
  auto s = std::make_shared<DecodeSequence>(base_->config(), a, capacity, base_->backend());
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
  for (const auto& [id, s] : sequences_) m.caches += s->cache.bytes();
  return m;
}

namespace {

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
  const int R = (int)rows.size();
  if (R == 0) return {};
  const int C = c.hidden_size, V = c.vocab_size;

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
  // Consecutive rows (after sorting by adapter) that share one adapter: one low-rank product for all of them.
  const Backend<float>& ops = base_->backend();
  std::vector<AdapterRun<float>> adapter_runs;
  int max_rank = 0;
  for (int r : order) {
    AdapterWeights* a = seqs[r]->adapter.get();
    const int n = (int)rows[r].tokens.size();
    if (!a) continue;
    const float* weights = a->in_memory_of(ops);
    if (!adapter_runs.empty() && adapter_runs.back().weights == weights) adapter_runs.back().n += n;
    else adapter_runs.push_back({weights, &a->table, (float)a->cfg.scale(), a->cfg.rank, begin[r], n});
    max_rank = std::max(max_rank, a->cfg.rank);
  }
  const int N = (int)ids.size();
  std::vector<CachedRun<float>> caches(R);
  for (int r = 0; r < R; r++) caches[r] = {&seqs[r]->cache, begin[r], (int)rows[r].tokens.size()};

  buf_.reserve(c, N, max_rank, ops);
  if (R > rows_room_) {
    last_ = ops.zeros((size_t)R * C);
    logits_ = ops.zeros((size_t)R * V);
    rows_room_ = R;
  }
  ops.upload_ints(buf_.ids->data(), ids.data(), N);
  ops.upload_ints(buf_.pos->data(), pos.data(), N);
  layers_.share_weights_of(*base_);
  layers_.forward_cached(N, buf_, caches, &adapter_runs);
  // Only each row's last position predicts its next token: the head over R positions.
  for (int r = 0; r < R; r++) {
    const size_t p = (size_t)(begin[r] + rows[r].tokens.size() - 1);
    ops.copy(last_->data() + (size_t)r * C, buf_.lnf->data() + p * C, C);
  }
  layers_.head_logits(logits_->data(), last_->data(), R);
  std::vector<float> logits((size_t)R * V);
  ops.download(logits.data(), logits_->data(), (size_t)R * V);

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
