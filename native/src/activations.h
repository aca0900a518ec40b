#pragma once
// Everything the forward keeps for the backward, plus backward scratch, for one (rows, seq_len) shape.
// Allocated once per shape and reused by every step of that shape: no allocation inside a step. Buffers are
// left uninitialised (FlatVector): every element a step reads, that step's forward or backward wrote first
// (a native test holds this), so a zeroing pass would only be one more single-threaded sweep of memory.
#include <array>
#include <cstdint>
#include <vector>
#include "buffer.h"
#include "config.h"
#include "lora.h"
#include "ops/attention.h"

namespace rt {

template <typename T>
struct LayerActivations {
  FlatVector<T> res_in;   // (N, C)  residual stream entering the layer
  FlatVector<T> rstd1;    // (N)     (ln1 = res_in * rstd1 * w is recomputed, not kept)
  FlatVector<T> q;        // (N, H*D)   after RoPE
  FlatVector<T> k;        // (N, KVH*D) after RoPE
  FlatVector<T> v;        // (N, KVH*D)
  FlatVector<T> att;      // (N, H*D)   attention output before o_proj
  FlatVector<T> lse;      // (B, H, T)  softmax log-sum-exp per query
  FlatVector<T> res_mid;  // (N, C)  residual stream after attention
  FlatVector<T> rstd2;    // (N)     (ln2 likewise)
  FlatVector<T> gate;     // (N, I)
  FlatVector<T> up;       // (N, I)  (h = silu(gate) * up is recomputed in the backward)
  // LoRA, per target module: u = dropout(x) A^T (N, r); with dropout, the kept mask (N, in) and
  // dropout(x) (N, in), since the adapter sees a different input than the base weight
  std::array<FlatVector<T>, kNumTargets> lora_u, lora_x;
  std::array<FlatVector<uint8_t>, kNumTargets> lora_keep;
};

constexpr int kHeadChunk = 128;  // positions per chunk of the LM head when the logits are not kept

template <typename T>
struct Activations {
  int B, T_;
  size_t N;
  std::vector<LayerActivations<T>> layers;
  FlatVector<T> res_out;  // (N, C)  after the last layer
  FlatVector<T> rstdf;    // (N)
  FlatVector<T> lnf;      // (N, C)
  // (N, V) logits, allocated only when needed: full training (the head's weight gradient takes them all
  // at once) or a caller keeping them. Otherwise the head runs in chunks of logits_chunk rows.
  FlatVector<T> logits;
  FlatVector<T> dlogits;     // (N, V)  only once a caller asked to keep logits while training
  FlatVector<T> chunk;       // (kHeadChunk, V) the chunked head's logits
  bool logits_kept = false;  // whether logits holds the last forward's logits
  FlatVector<T> losses;      // (N)
  // shared by all layers: ln (N, C) is ln1/ln2 recomputed; h (N, I) likewise; backward scratch
  FlatVector<T> ln, h, dres, dln, dtmp, dq, dk, dv, datt, dgate, dup;
  FlatVector<T> lora_du, lora_dx;  // LoRA backward scratch: (N, r) and (N, widest input)
  AttentionScratch<T> attn_scratch;
  std::vector<SegmentRun> runs;
  // Activation checkpointing: layers[l] holds only res_in, and every layer's other buffers live in the one
  // recompute slot, which the forward overwrites layer by layer and the backward refills before each layer.
  bool checkpointed = false;
  LayerActivations<T> recompute;

  // lora: the adapters' settings when LoRA is on (null in full training)
  Activations(const ModelConfig& c, int rows, int seq_len, const LoraConfig* lora, const LoraTable* table,
              bool checkpointed = false);
  // Where layer l's kept activations are (its res_in is always layers[l].res_in).
  LayerActivations<T>& kept(int l) { return checkpointed ? recompute : layers[l]; }
  size_t bytes() const;
  // What checkpointing avoids holding: the per-layer buffers of every layer but the one recompute slot.
  size_t checkpointing_saved_bytes() const;
};

}  // namespace rt
