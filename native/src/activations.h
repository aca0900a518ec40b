#pragma once
// Everything the forward keeps for the backward, plus backward scratch, for one (rows, seq_len) shape.
// Allocated once per shape, in the model's backend memory, and reused by every step of that shape: no
// allocation inside a step. Every element a step reads, that step's forward or backward wrote first (a
// native test holds this): what a buffer held before the step never matters.
#include <array>
#include <cstdint>
#include <vector>
#include "backend_array.h"
#include "buffer.h"
#include "config.h"
#include "lora.h"
#include "ops/attention.h"

namespace rt {

template <typename T>
struct LayerActivations {
  BackendArray<T> res_in;   // (N, C)  residual stream entering the layer
  BackendArray<T> rstd1;    // (N)     (ln1 = res_in * rstd1 * w is recomputed, not kept)
  BackendArray<T> q;        // (N, H*D)   after RoPE
  BackendArray<T> k;        // (N, KVH*D) after RoPE
  BackendArray<T> v;        // (N, KVH*D)
  BackendArray<T> att;      // (N, H*D)   attention output before o_proj
  BackendArray<T> lse;      // (B, H, T)  softmax log-sum-exp per query
  BackendArray<T> res_mid;  // (N, C)  residual stream after attention
  BackendArray<T> rstd2;    // (N)     (ln2 likewise)
  BackendArray<T> gate;     // (N, I)
  BackendArray<T> up;       // (N, I)  (h = silu(gate) * up is recomputed in the backward)
  // LoRA, per target module: u = dropout(x) A^T (N, r); with dropout, dropout(x) (N, in), since the adapter
  // sees a different input than the base weight (the mask is counter-based: drawn again, never kept)
  std::array<BackendArray<T>, kNumTargets> lora_u, lora_x;
};

constexpr int kHeadChunk = 128;  // positions per chunk of the LM head when the logits are not kept

template <typename T>
struct Activations {
  int B, T_;
  size_t N;
  std::vector<LayerActivations<T>> layers;
  BackendArray<T> res_out;  // (N, C)  after the last layer
  BackendArray<T> rstdf;    // (N)
  BackendArray<T> lnf;      // (N, C)
  // (N, V) logits, allocated only when needed: full training (the head's weight gradient takes them all
  // at once) or a caller keeping them. Otherwise the head runs in chunks of logits_chunk rows.
  BackendArray<T> logits;
  BackendArray<T> dlogits;   // (N, V)  only once a caller asked to keep logits while training
  BackendArray<T> chunk;     // (rows, V) the chunked head's logits (kHeadChunk or the backend's rows)
  bool logits_kept = false;  // whether logits holds the last forward's logits
  BackendArray<T> losses;    // (N)
  // shared by all layers: ln (N, C) is ln1/ln2 recomputed; h (N, I) likewise; backward scratch
  BackendArray<T> ln, h, dres, dln, dtmp, dq, dk, dv, datt, dgate, dup;
  BackendArray<T> lora_du, lora_dx;  // LoRA backward scratch: (N, r) and (N, widest input)
  AttentionScratch<T> attn_scratch;
  std::vector<SegmentRun> runs;
  // Activation checkpointing: layers[l] holds only res_in, and every layer's other buffers live in the one
  // recompute slot, which the forward overwrites layer by layer and the backward refills before each layer.
  bool checkpointed = false;
  LayerActivations<T> recompute;

  // lora: the adapters' settings when LoRA is on (null in full training)
  // The batch's ids, labels and positions copied into the backend's memory (a backend whose memory is the
  // host's reads the caller's arrays instead, and these stay empty).
  Buffer<int32_t> ids, labels, positions;
  BackendArray<T> label_weights;  // (N) the step's per-position loss weights, when a caller gives them

  Activations(const ModelConfig& c, int rows, int seq_len, const LoraConfig* lora, const LoraTable* table,
              bool checkpointed, const Backend<T>& ops);
  // Where layer l's kept activations are (its res_in is always layers[l].res_in).
  LayerActivations<T>& kept(int l) { return checkpointed ? recompute : layers[l]; }
  size_t bytes() const;
  // What checkpointing avoids holding: the per-layer buffers of every layer but the one recompute slot.
  size_t checkpointing_saved_bytes() const;
};

}  // namespace rt
