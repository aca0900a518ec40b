#pragma once
// Serving many LoRA adapters over one base model: the base weights exist once, each adapter only as its
// low-rank A and B. A decode step runs every active sequence together, whatever its adapter: one base GEMM
// over all rows' positions per linear layer, then each run of rows that shares an adapter adds its own
// scale * (x A^T) B^T (Punica / S-LoRA). Each sequence keeps its own KV cache, so sequences join and
// leave between steps (continuous batching). The layers are the model's own (Model::forward_cached), run
// through its backend.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>
#include "decode_buffers.h"
#include "kv_cache.h"
#include "lora.h"
#include "model.h"

namespace rt {

// One PEFT adapter: its settings, the offsets of its A and B tensors, and their weights (filled by the
// caller at the table's offsets before any sequence uses it).
struct AdapterWeights {
  LoraConfig cfg;
  LoraTable table;
  std::vector<float> weights;  // (table.total) A [r, in] and B [out, r] of each targeted layer
  AdapterWeights(const ModelConfig& c, const LoraConfig& l) : cfg(l), table(c, l), weights(table.total) {}

  // The weights where the backend's ops read them: `weights` itself on a host-memory backend; otherwise a
  // copy in the backend's memory, made the first time a step uses the adapter (its weights are final by then:
  // the caller writes them before opening a sequence on it) and kept while the adapter is loaded.
  const float* in_memory_of(const Backend<float>& ops) {
    if (ops.host_memory()) return weights.data();
    if (!on_device) {
      on_device = ops.zeros(weights.size());
      ops.upload(on_device->data(), weights.data(), weights.size());
    }
    return on_device->data();
  }

 private:
  Buffer<float> on_device;  // only steps touch it, one at a time
};

// One sequence being generated: its adapter (null: the base alone) and the keys and values so far.
struct DecodeSequence {
  std::shared_ptr<AdapterWeights> adapter;
  KvCache<float> cache;
  DecodeSequence(const ModelConfig& c, std::shared_ptr<AdapterWeights> a, int capacity, const Backend<float>& ops)
      : adapter(std::move(a)), cache(c, capacity, ops) {}
};

// What one sequence feeds into a step: its new tokens (the whole prompt on its first step, then the last
// sampled token) and how its next token is drawn.
struct DecodeRow {
  int sequence = 0;
  std::vector<int32_t> tokens;
  double temperature = 0;  // 0: greedy
  double top_p = 1;
  uint64_t seed = 0;
  int64_t draw = 0;      // index of this draw in the sequence's random stream
  int top_logprobs = 0;  // how many of the likeliest tokens' log-probabilities to report (0: none)
};

// What a step reports beside the tokens: each row's log-probability of its token under the model's own
// distribution (softmax of the logits, before temperature and top-p, as OpenAI's logprobs are), and the
// likeliest tokens of the rows that asked for them.
struct StepLogprobs {
  std::vector<float> chosen;        // (R) log p(next token)
  int k = 0;                        // the most top_logprobs any row asked for
  std::vector<int32_t> top_ids;     // (R, k) likeliest first; a row that asked for fewer has -1 after its own
  std::vector<float> top_logprobs;  // (R, k)
};

struct DecoderMemory {
  size_t base = 0, adapters = 0, caches = 0;
  int base_bytes_per_param = 4;  // 2 with a bf16 base
};

// Thread safety: the maps are guarded, so sequences and adapters may be added or dropped from one thread
// while step() runs on another; a step keeps what it uses alive until it ends. One step at a time.
class BatchedDecoder {
 public:
  // A bf16 base (Model::round_base_to_bf16) is widened to fp32 one layer at a time inside each step. On a
  // backend with memory of its own (a GPU) the caches, the step's buffers and the adapters live there too:
  // only the step's token ids go in and its logits come out.
  explicit BatchedDecoder(std::shared_ptr<Model<float>> base);

  const ModelConfig& config() const { return base_->config(); }
  // Registers adapter `id` with zeroed weights; the caller writes them before opening a sequence on it.
  std::shared_ptr<AdapterWeights> add_adapter(int id, const LoraConfig& cfg);
  void remove_adapter(int id);
  // A sequence of at most `capacity` positions (prompt + new tokens) on adapter `adapter` (-1: none).
  void open(int sequence, int adapter, int capacity);
  void close(int sequence);
  // Runs one decode step over `rows`; returns each row's next token, in the rows' order, and fills
  // `logprobs` when given.
  std::vector<int32_t> step(const std::vector<DecodeRow>& rows, StepLogprobs* logprobs = nullptr);
  DecoderMemory memory() const;

 private:
  std::shared_ptr<Model<float>> base_;
  // The base's weights with state of its own (a bf16 base's staging): steps run beside the base's own calls.
  Model<float> layers_;
  mutable std::mutex mu_;
  std::map<int, std::shared_ptr<AdapterWeights>> adapters_;
  std::map<int, std::shared_ptr<DecodeSequence>> sequences_;
  // One step at a time uses these; they grow to the largest step and are then reused.
  DecodeBuffers<float> buf_;
  Buffer<float> last_, logits_;  // (R, C) each row's last position after the final norm; (R, V) its logits
  int rows_room_ = 0;
};

}  // namespace rt
