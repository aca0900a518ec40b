#pragma once
// Ring attention over a sequence-parallel group (zigzag layout).
//
// Each packed row of length T is cut into 2N chunks of c = T / 2N tokens; rank i holds chunks i and
// 2N-1-i of every row (so each rank does the same causal work), laid out as (rows, 2c): its local tokens.
// Queries stay put; the key/value blocks (with their segment ids) travel round the ring, each rank adding
// every block's share by log-sum-exp merging. The backward sends the blocks round again, and with them the
// dK/dV accumulated for each block, which ends back at its owner. The transfer of the next block runs on
// its own threads while the current one is computed.
#include <cstdint>
#include <vector>
#include "ops/attention_block.h"
#include "ring_link.h"

namespace rt {

struct RingShape {
  int rows, chunk;  // local tokens: rows * 2 * chunk
  int H, KVH, D;    // heads, key/value heads, head size
  int tokens() const { return rows * 2 * chunk; }
  BlockShape block() const { return {chunk, H, KVH, D}; }
};

// A sequence-parallel batch of (rows, 2 * chunk) local tokens, as attention sees it.
inline RingShape ring_shape(const AttentionShape& a) { return {a.B, a.T / 2, a.H, a.KVH, a.D}; }

// Where chunk w (0 or 1) of local row b of rank r sits in its row.
inline ChunkPlace zigzag_place(int rank, int size, int b, int w, int chunk) {
  return {b, (w == 0 ? rank : 2 * size - 1 - rank) * chunk};
}

// The buffers of the ring loop, kept between steps (no allocation once a shape has been seen).
template <typename T>
struct RingScratch {
  std::vector<char> cur, next;           // a travelling block: K, V (tokens, KVH*D) then segment ids
  std::vector<T> acc_send, acc_in, own;  // dK|dV accumulators: sent, received, this rank's share
  std::vector<SegmentRun> kruns;
  std::vector<BlockPair> pairs;
  BlockScratch<T> tiles;
};

// out (tokens, H*D) and lse (rows*2, H, chunk) of the local queries q against every rank's k/v.
// runs: the local segment runs of (rows*2) chunks of length chunk; seg the local segment ids.
template <typename T>
void ring_attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const int32_t* seg,
                            const std::vector<SegmentRun>& runs, const RingShape& s, const SequenceParallel& sp,
                            RingScratch<T>& scratch);

// dq (written) for the local queries; dk, dv (written) for the local keys and values, summed over every
// rank's queries.
template <typename T>
void ring_attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                             const T* lse, const int32_t* seg, const std::vector<SegmentRun>& runs, const RingShape& s,
                             const SequenceParallel& sp, RingScratch<T>& scratch);

}  // namespace rt
