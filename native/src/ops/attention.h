#pragma once
// Causal self-attention over packed rows with grouped-query heads.
//
// A row is a sequence of segments (contiguous runs of one segment id); a token attends to itself and the
// earlier tokens of its own segment only. Each segment is therefore an independent causal attention, and
// we compute it as one: per (segment, head), in tiles of query rows, S = Q K^T / sqrt(D) over the keys
// up to the tile's last row (causal: later keys are never computed), softmax, O = P V.
// The forward keeps only O and the log-sum-exp per query row; the backward recomputes P from them
// (flash-attention style), so no T x T matrix is kept between forward and backward.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>
#include "../blas.h"
#include "../error.h"
#include "../parallel.h"
#include "vexp.h"

namespace rt {

struct SegmentRun {
  int row, start, len;  // tokens [row*T + start, row*T + start + len)
};

// Splits rows into segment runs; a segment id that reappears after another one in the same row is an error
// (packed rows keep each example contiguous).
inline void find_segment_runs(std::vector<SegmentRun>& runs, const int32_t* seg, int B, int T) {
  runs.clear();
  std::vector<int32_t> seen;
  for (int b = 0; b < B; b++) {
    const int32_t* s = seg + (size_t)b * T;
    seen.clear();
    int start = 0;
    for (int t = 1; t <= T; t++) {
      if (t < T && s[t] == s[start]) continue;
      if (std::find(seen.begin(), seen.end(), s[start]) != seen.end())
        fail("attention", "segment id ", s[start], " of row ", b, " is not contiguous: it reappears at position ",
             start);
      seen.push_back(s[start]);
      runs.push_back({b, start, t - start});
      start = t;
    }
  }
}

struct AttentionShape {
  int B, T, H, KVH, D;
  int qdim() const { return H * D; }
  int kvdim() const { return KVH * D; }
};

constexpr int kAttentionTile = 128;  // query rows per tile

// Scratch for one thread: S/P and dP tiles of kAttentionTile x T.
template <typename T>
struct AttentionScratch {
  std::vector<T> buf;
  void reserve(int threads, int T_) { buf.assign((size_t)threads * 2 * kAttentionTile * T_, T(0)); }
  T* tile(int thread, int which, int T_) { return buf.data() + ((size_t)thread * 2 + which) * kAttentionTile * T_; }
};

namespace detail {

// The tile kernels both whole-row attention and ring attention's block attention (attention_block.h) are
// built from. A tile is `rows` query rows starting at i0 (pointers at row 0 of the run) against `keys` keys.
// causal: key j is visible to query i0 + r only when j <= i0 + r (query and key runs start together).

// P[rows, keys] = exp(scale Q K^T - shift), zero past each row's last visible key. shift is the row max (then
// mx and sum receive it and the row sum of P, so P is not yet normalised) or, given lse, the stored
// log-sum-exp of the row (the backward's recomputation: P is then the softmax itself).
template <typename Tp>
void tile_scores(Tp* P, const Tp* Q, int ldq, const Tp* K, int ldk, int i0, int rows, int keys, int D, Tp scale,
                 bool causal, const Tp* lse, Tp* mx, Tp* sum) {
  gemm(false, true, rows, keys, D, scale, Q + (size_t)i0 * ldq, ldq, K, ldk, Tp(0), P, keys);
  for (int r = 0; r < rows; r++) {
    Tp* p = P + (size_t)r * keys;
    const int last = causal ? std::min(keys - 1, i0 + r) : keys - 1;  // inclusive
    Tp shift;
    if (lse) {
      shift = lse[i0 + r];
    } else {
      shift = p[0];
      for (int j = 1; j <= last; j++) shift = std::max(shift, p[j]);
      mx[r] = shift;
    }
    Tp s = 0;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j <= last; j++) s += p[j] = vexp(p[j] - shift);
    if (sum) sum[r] = s;
    for (int j = last + 1; j < keys; j++) p[j] = 0;
  }
}

// One tile's backward given the softmax's LSE: dV += P^T dO, dK += scale dS^T Q, and dQ = beta dQ + scale dS K
// (beta 0 when the tile sees every key of its rows at once, 1 when key blocks add up). P and dP are scratch
// tiles of rows x keys; dS = P (dO V^T - rowsum(dO * O)) is formed in dP.
template <typename Tp>
void tile_backward(Tp* P, Tp* dP, const Tp* Q, const Tp* O, const Tp* dO, Tp* dQ, int ldq, const Tp* K, const Tp* V,
                   Tp* dK, Tp* dV, int ldk, const Tp* lse, int i0, int rows, int keys, int D, Tp scale, bool causal,
                   Tp dq_beta) {
  tile_scores(P, Q, ldq, K, ldk, i0, rows, keys, D, scale, causal, lse, (Tp*)nullptr, (Tp*)nullptr);
  const size_t at = (size_t)i0 * ldq;
  gemm(true, false, keys, D, rows, Tp(1), P, keys, dO + at, ldq, Tp(1), dV, ldk);
  gemm(false, true, rows, keys, D, Tp(1), dO + at, ldq, V, ldk, Tp(0), dP, keys);
  for (int r = 0; r < rows; r++) {
    const Tp* o = O + at + (size_t)r * ldq;
    const Tp* d = dO + at + (size_t)r * ldq;
    double di = 0;
    for (int c = 0; c < D; c++) di += (double)o[c] * d[c];
    Tp* dp = dP + (size_t)r * keys;
    const Tp* p = P + (size_t)r * keys;
    for (int j = 0; j < keys; j++) dp[j] = p[j] * (dp[j] - (Tp)di);
  }
  gemm(false, false, rows, D, keys, scale, dP, keys, K, ldk, dq_beta, dQ + at, ldq);
  gemm(true, false, keys, D, rows, scale, dP, keys, Q + at, ldq, Tp(1), dK, ldk);
}

// Runs fn(run_index, kv_head, thread) over every (run, kv head) task. With at least as many tasks as threads
// they run in parallel (BLAS inside is then single-threaded); otherwise one by one, each GEMM threaded.
template <typename Fn>
void for_each_task(size_t runs, int KVH, Fn fn) {
  const long tasks = (long)runs * KVH;
  if (tasks >= max_threads() && max_threads() > 1) {
#pragma omp parallel for schedule(dynamic, 1)
    for (long t = 0; t < tasks; t++) fn((size_t)(t / KVH), (int)(t % KVH), thread_index());
  } else {
    for (long t = 0; t < tasks; t++) fn((size_t)(t / KVH), (int)(t % KVH), 0);
  }
}

}  // namespace detail

// out[N, H*D], lse[B, H, T]; q[N, H*D], k/v[N, KVH*D] (after RoPE); N = B*T.
template <typename Tp>
void attention_forward(Tp* out, Tp* lse, const Tp* q, const Tp* k, const Tp* v, const std::vector<SegmentRun>& runs,
                       const AttentionShape& s, AttentionScratch<Tp>& scratch) {
  const int QD = s.qdim(), KD = s.kvdim(), group = s.H / s.KVH;
  const Tp scale = (Tp)(1.0 / std::sqrt((double)s.D));
  detail::for_each_task(runs.size(), s.KVH, [&](size_t ri, int kvh, int thread) {
    const SegmentRun& r = runs[ri];
    const size_t base = (size_t)r.row * s.T + r.start;
    const Tp* K = k + base * KD + (size_t)kvh * s.D;
    const Tp* V = v + base * KD + (size_t)kvh * s.D;
    Tp* P = scratch.tile(thread, 0, s.T);
    Tp mx[kAttentionTile], sum[kAttentionTile];  // a tile's row maxima and row sums
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
      const Tp* Q = q + base * QD + (size_t)h * s.D;
      Tp* O = out + base * QD + (size_t)h * s.D;
      Tp* L = lse + ((size_t)r.row * s.H + h) * s.T + r.start;
      for (int i0 = 0; i0 < r.len; i0 += kAttentionTile) {
        const int rows = std::min(kAttentionTile, r.len - i0), keys = i0 + rows;
        detail::tile_scores(P, Q, QD, K, KD, i0, rows, keys, s.D, scale, true, (const Tp*)nullptr, mx, sum);
        for (int rr = 0; rr < rows; rr++) {  // every key of the row is in the tile: normalise P, keep its LSE
          Tp* p = P + (size_t)rr * keys;
          const Tp inv = Tp(1) / sum[rr];
#pragma omp simd
          for (int j = 0; j <= i0 + rr; j++) p[j] *= inv;
          L[i0 + rr] = mx[rr] + (Tp)std::log((double)sum[rr]);
        }
        gemm(false, false, rows, s.D, keys, Tp(1), P, keys, V, KD, Tp(0), O + (size_t)i0 * QD, QD);
      }
    }
  });
}

// dq = , dk = , dv =  (activation gradients, written). dout[N, H*D]; out and lse from the forward.
template <typename Tp>
void attention_backward(Tp* dq, Tp* dk, Tp* dv, const Tp* dout, const Tp* q, const Tp* k, const Tp* v, const Tp* out,
                        const Tp* lse, const std::vector<SegmentRun>& runs, const AttentionShape& s,
                        AttentionScratch<Tp>& scratch) {
  const int QD = s.qdim(), KD = s.kvdim(), group = s.H / s.KVH;
  const size_t N = (size_t)s.B * s.T;
  std::fill(dk, dk + N * KD, Tp(0));
  std::fill(dv, dv + N * KD, Tp(0));
  const Tp scale = (Tp)(1.0 / std::sqrt((double)s.D));
  detail::for_each_task(runs.size(), s.KVH, [&](size_t ri, int kvh, int thread) {
    const SegmentRun& r = runs[ri];
    const size_t base = (size_t)r.row * s.T + r.start;
    const Tp* K = k + base * KD + (size_t)kvh * s.D;
    const Tp* V = v + base * KD + (size_t)kvh * s.D;
    Tp* dK = dk + base * KD + (size_t)kvh * s.D;
    Tp* dV = dv + base * KD + (size_t)kvh * s.D;
    Tp* P = scratch.tile(thread, 0, s.T);
    Tp* dP = scratch.tile(thread, 1, s.T);
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
      const size_t off = base * QD + (size_t)h * s.D;
      const Tp* Q = q + off;
      const Tp* O = out + off;
      const Tp* dO = dout + off;
      Tp* dQ = dq + off;
      const Tp* L = lse + ((size_t)r.row * s.H + h) * s.T + r.start;
      for (int i0 = 0; i0 < r.len; i0 += kAttentionTile) {
        const int rows = std::min(kAttentionTile, r.len - i0), keys = i0 + rows;
        detail::tile_backward(P, dP, Q, O, dO, dQ, QD, K, V, dK, dV, KD, L, i0, rows, keys, s.D, scale, true, Tp(0));
      }
    }
  });
}

}  // namespace rt
