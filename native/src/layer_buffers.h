#pragma once
// Where one decoder layer's forward reads and writes. The training forward points these into the layer's
// kept activations (the backward needs them); generation and serving point every layer at the same few
// buffers (decode_buffers.h) and append each sequence's keys and values to its KV cache.
#include <array>
#include <cstdint>
#include <vector>

#include "kv_cache.h"
#include "lora.h"
#include "ops/attention.h"

namespace rt {

// An adapter's buffers for one projection: u = dropout(x) A^T (n, r); with dropout, the dropped input
// (n, in) (its mask is drawn again in the backward: it is counter-based). x null: no dropout (evaluation,
// generation).
template <typename T>
struct AdapterBuffers {
  T* u = nullptr;
  T* x = nullptr;
};

template <typename T>
struct LayerBuffers {
  int n = 0;                                       // positions
  const int32_t* positions = nullptr;              // (n) RoPE positions
  T* res_in = nullptr;                             // (n, C) residual stream entering the layer
  T* res_mid = nullptr;                            // (n, C) after attention (may alias res_in)
  T* res_out = nullptr;                            // (n, C) after the MLP (may alias res_mid)
  T *rstd1 = nullptr, *rstd2 = nullptr;            // (n)
  T *ln = nullptr, *tmp = nullptr;                 // (n, C) scratch: the normed input, a branch's output
  T *q = nullptr, *att = nullptr;                  // (n, H*D) queries after RoPE, attention output
  T *k = nullptr, *v = nullptr;                    // (n, KVH*D) keys after RoPE, values
  T *gate = nullptr, *up = nullptr, *h = nullptr;  // (n, I)
  T* lse = nullptr;  // (B, H, T) softmax log-sum-exp per query, kept for the backward (packed rows only)
  std::array<AdapterBuffers<T>, kNumTargets> adapters;  // used for the targeted projections only
};

// Attention over packed rows: each segment attends causally within itself.
template <typename T>
struct PackedRows {
  const std::vector<SegmentRun>* runs;
  AttentionShape shape;
  AttentionScratch<T>* scratch;
};

// A run of positions [begin, begin + n) of the forward that share one LoRA adapter: each linear layer the
// adapter targets adds scale * (x A^T) B^T over those positions. Training has one run over every position
// (the model's own adapters); batched serving has one per adapter among its rows.
template <typename T>
struct AdapterRun {
  const T* weights;  // the adapter's flat buffer, at the offsets of its table
  const LoraTable* table;
  T scale;
  int rank;
  int begin, n;
};

// A run of positions [begin, begin + n) of the forward that extends one sequence's KV cache: their keys
// and values are appended at cache->filled and their queries attend to every cached position before them.
template <typename T>
struct CachedRun {
  KvCache<T>* cache;
  int begin, n;
};

}  // namespace rt
