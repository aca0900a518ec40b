#pragma once
// Attention of a block of queries against a block of keys/values that may live on another rank: the op
// ring attention (sequence parallelism) is built from.
//
// A "chunk" is a contiguous range of a packed row, cut into segment runs (find_segment_runs over chunks
// of length c). Query chunk qc and key chunk kc of the same row interact only where a query run and a key
// run share a segment id (packed examples never attend to each other); the pair is causal when both are
// the same chunk, full when the key chunk lies wholly before the query chunk, and absent when it lies
// after. Pairs nothing connects are skipped: no FLOP is spent on them.
//
// Forward: each call adds one block's contribution to (O, LSE) by log-sum-exp merging, so calling it for
// every key block in any order gives softmax attention over their union. Backward: given the final O, LSE
// and dO it adds the block's share to dQ, dK and dV (flash-attention's recomputation of P from LSE).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>
#include "attention.h"

namespace rt {

// Where a chunk sits in its row: chunks are ordered by start, so comparing starts orders them causally.
struct ChunkPlace {
  int row;    // packed row (same for both sides of a pair)
  int start;  // first token's index in the row
};

// One (query run, key run) pair: runs index into the query block's and key block's run lists.
struct BlockPair {
  int q_run, k_run;
  bool causal;  // same chunk: key j <= query i within the run; otherwise every key is visible
};

// The pairs connecting query chunk qc (runs qruns, chunk qplace) and key chunk kc. Runs must be those of
// one chunk each (SegmentRun.row is the chunk's index in its block, start within the chunk).
inline void connect_chunks(std::vector<BlockPair>& pairs, const std::vector<SegmentRun>& qruns, int qchunk,
                           const ChunkPlace& qplace, const int32_t* qseg, int qlen,
                           const std::vector<SegmentRun>& kruns, int kchunk, const ChunkPlace& kplace,
                           const int32_t* kseg, int klen) {
  pairs.clear();
  if (qplace.row != kplace.row || kplace.start > qplace.start) return;  // other row, or keys wholly later
  const bool same = kplace.start == qplace.start;
  for (size_t i = 0; i < qruns.size(); i++) {
    const SegmentRun& q = qruns[i];
    if (q.row != qchunk) continue;
    const int32_t s = qseg[(size_t)q.row * qlen + q.start];
    for (size_t j = 0; j < kruns.size(); j++) {
      const SegmentRun& k = kruns[j];
      if (k.row != kchunk || kseg[(size_t)k.row * klen + k.start] != s) continue;
      pairs.push_back({(int)i, (int)j, same});
    }
  }
}

// Scratch for one thread: P and dP tiles of kAttentionTile x (longest key run).
template <typename T>
struct BlockScratch {
  std::vector<T> buf;
  int keys = 0;
  void reserve(int threads, int max_keys) {
    keys = max_keys;
    buf.assign((size_t)threads * 2 * kAttentionTile * max_keys, T(0));
  }
  T* tile(int thread, int which) { return buf.data() + ((size_t)thread * 2 + which) * kAttentionTile * keys; }
};

// Layout of a block: tokens (chunks * len), q rows H*D wide, k/v rows KVH*D wide, lse (chunks, H, len).
struct BlockShape {
  int len, H, KVH, D;  // tokens per chunk
  int qdim() const { return H * D; }
  int kvdim() const { return KVH * D; }
};

// Adds the contribution of key chunk pairs to out (N, H*D) and lse (chunks, H, len). lse starts at -inf
// and out at 0 for queries with no key yet. k/v/kseg belong to the key block; pairs from connect_chunks.
// tmp (threads, kAttentionTile * D) holds one tile's unnormalised P V.
template <typename Tp>
void attention_block_forward(Tp* out, Tp* lse, const Tp* q, const std::vector<SegmentRun>& qruns, const Tp* k,
                             const Tp* v, const std::vector<SegmentRun>& kruns, const std::vector<BlockPair>& pairs,
                             const BlockShape& s, BlockScratch<Tp>& scratch) {
  const int QD = s.qdim(), KD = s.kvdim(), group = s.H / s.KVH;
  const Tp scale = (Tp)(1.0 / std::sqrt((double)s.D));
  detail::for_each_task(pairs.size(), s.KVH, [&](size_t pi, int kvh, int thread) {
    const BlockPair& pr = pairs[pi];
    const SegmentRun& qr = qruns[pr.q_run];
    const SegmentRun& kr = kruns[pr.k_run];
    const size_t qbase = (size_t)qr.row * s.len + qr.start, kbase = (size_t)kr.row * s.len + kr.start;
    const Tp* K = k + kbase * KD + (size_t)kvh * s.D;
    const Tp* V = v + kbase * KD + (size_t)kvh * s.D;
    Tp* P = scratch.tile(thread, 0);
    // The second tile holds P V (rows x D) and the row statistics, all far smaller than rows x keys.
    Tp* PV = scratch.tile(thread, 1);
    Tp* mx = PV + (size_t)kAttentionTile * s.D;
    Tp* sum = mx + kAttentionTile;
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
      const Tp* Q = q + qbase * QD + (size_t)h * s.D;
      Tp* O = out + qbase * QD + (size_t)h * s.D;
      Tp* L = lse + ((size_t)qr.row * s.H + h) * s.len + qr.start;
      for (int i0 = 0; i0 < qr.len; i0 += kAttentionTile) {
        const int rows = std::min(kAttentionTile, qr.len - i0);
        const int keys = pr.causal ? i0 + rows : kr.len;
        detail::tile_scores(P, Q, QD, K, KD, i0, rows, keys, s.D, scale, pr.causal, (const Tp*)nullptr, mx, sum);
        gemm(false, false, rows, s.D, keys, Tp(1), P, keys, V, KD, Tp(0), PV, s.D);
        for (int r = 0; r < rows; r++) {
          // merge: lse' = logaddexp(lse, m + log sum);  O' = O e^(lse - lse') + PV e^(m - lse')
          const Tp old = L[i0 + r], blk = mx[r] + (Tp)std::log((double)sum[r]);
          const Tp hi = std::max(old, blk);
          const Tp merged = hi + (Tp)std::log(std::exp((double)(old - hi)) + std::exp((double)(blk - hi)));
          const Tp keep = old == -std::numeric_limits<Tp>::infinity() ? Tp(0) : (Tp)std::exp((double)(old - merged));
          const Tp add = (Tp)std::exp((double)(mx[r] - merged));
          Tp* o = O + (size_t)(i0 + r) * QD;
          const Tp* pv = PV + (size_t)r * s.D;
          for (int c = 0; c < s.D; c++) o[c] = o[c] * keep + pv[c] * add;
          L[i0 + r] = merged;
        }
      }
    }
  });
}

// Adds the key block's share to dq (N, H*D) and to dk/dv of the key block (N, KVH*D). out, lse and dout
// are the queries' final attention output, log-sum-exp and its gradient. Pairs must write disjoint rows:
// pass those of one (query chunk, key chunk) at a time.
template <typename Tp>
void attention_block_backward(Tp* dq, Tp* dk, Tp* dv, const Tp* dout, const Tp* q, const Tp* out, const Tp* lse,
                              const std::vector<SegmentRun>& qruns, const Tp* k, const Tp* v,
                              const std::vector<SegmentRun>& kruns, const std::vector<BlockPair>& pairs,
                              const BlockShape& s, BlockScratch<Tp>& scratch) {
  const int QD = s.qdim(), KD = s.kvdim(), group = s.H / s.KVH;
  const Tp scale = (Tp)(1.0 / std::sqrt((double)s.D));
  detail::for_each_task(pairs.size(), s.KVH, [&](size_t pi, int kvh, int thread) {
    const BlockPair& pr = pairs[pi];
    const SegmentRun& qr = qruns[pr.q_run];
    const SegmentRun& kr = kruns[pr.k_run];
    const size_t qbase = (size_t)qr.row * s.len + qr.start, kbase = (size_t)kr.row * s.len + kr.start;
    const Tp* K = k + kbase * KD + (size_t)kvh * s.D;
    const Tp* V = v + kbase * KD + (size_t)kvh * s.D;
    Tp* dK = dk + kbase * KD + (size_t)kvh * s.D;
    Tp* dV = dv + kbase * KD + (size_t)kvh * s.D;
    Tp* P = scratch.tile(thread, 0);
    Tp* dP = scratch.tile(thread, 1);
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
      const size_t off = qbase * QD + (size_t)h * s.D;
      const Tp* Q = q + off;
      const Tp* O = out + off;
      const Tp* dO = dout + off;
      Tp* dQ = dq + off;
      const Tp* L = lse + ((size_t)qr.row * s.H + h) * s.len + qr.start;
      for (int i0 = 0; i0 < qr.len; i0 += kAttentionTile) {
        const int rows = std::min(kAttentionTile, qr.len - i0);
        const int keys = pr.causal ? i0 + rows : kr.len;
        detail::tile_backward(P, dP, Q, O, dO, dQ, QD, K, V, dK, dV, KD, L, i0, rows, keys, s.D, scale, pr.causal,
                              Tp(1));
      }
    }
  });
}

}  // namespace rt
