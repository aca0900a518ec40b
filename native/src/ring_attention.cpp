#include "ring_attention.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <limits>
#include <thread>
#include "error.h"
#include "parallel.h"
#include "ring_exchange.h"

namespace rt {

namespace {

using ring::Exchange;
using ring::Piece;

template <typename T>
struct BlockView {
  T* k;
  T* v;
  int32_t* seg;
};

template <typename T>
size_t block_bytes(const RingShape& s) {
  const size_t n = (size_t)s.tokens();
  return 2 * n * (size_t)s.KVH * s.D * sizeof(T) + n * sizeof(int32_t);
}

template <typename T>
BlockView<T> view(std::vector<char>& buf, const RingShape& s) {
  const size_t kv = (size_t)s.tokens() * s.KVH * s.D;
  T* k = (T*)buf.data();
  return {k, k + kv, (int32_t*)(k + 2 * kv)};
}

template <typename T>
void prepare(RingScratch<T>& scratch, const RingShape& s, const SequenceParallel& sp) {
  if (sp.size < 2 || !sp.link) fail("ring attention", "needs a group of at least 2 ranks with a link");
  if (sp.rank < 0 || sp.rank >= sp.size) fail("ring attention", "rank ", sp.rank, " outside group of ", sp.size);
  if (s.H % s.KVH != 0) fail("ring attention", s.H, " heads are not a multiple of ", s.KVH, " key/value heads");
  const size_t bytes = block_bytes<T>(s);
  if (scratch.cur.size() != bytes) {  // once per shape
    scratch.cur.assign(bytes, 0);
    scratch.next.assign(bytes, 0);
  }
  // P and dP tiles over a chunk's keys; the forward's second tile holds P V and two row statistics.
  const int keys = std::max(s.chunk, s.D + 2);
  if (scratch.tiles.keys != keys) scratch.tiles.reserve(max_threads(), keys);
}

template <typename T>
void pack_own(RingScratch<T>& scratch, const T* k, const T* v, const int32_t* seg, const RingShape& s) {
  const size_t kv = (size_t)s.tokens() * s.KVH * s.D;
  BlockView<T> b = view<T>(scratch.cur, s);
  std::memcpy(b.k, k, kv * sizeof(T));
  std::memcpy(b.v, v, kv * sizeof(T));
  std::memcpy(b.seg, seg, (size_t)s.tokens() * sizeof(int32_t));
}

// Which (query chunk, key chunk) combinations of a block to visit. The backward splits the owner's own block
// in two so that a transfer overlaps each half: the chunks against themselves (causal), then across chunks.
enum class ChunkPairs { all, same, cross };

// fn() for every pair of chunks the key block from rank src connects to (scratch.pairs holds the runs).
template <typename T, typename Fn>
void for_each_connected(RingScratch<T>& scratch, const std::vector<SegmentRun>& qruns, const int32_t* qseg,
                        const int32_t* kseg, int src, const RingShape& s, const SequenceParallel& sp, ChunkPairs which,
                        Fn fn) {
  find_segment_runs(scratch.kruns, kseg, 2 * s.rows, s.chunk);
  for (int b = 0; b < s.rows; b++)
    for (int qw = 0; qw < 2; qw++)
      for (int kw = 0; kw < 2; kw++) {
        if ((which == ChunkPairs::same && qw != kw) || (which == ChunkPairs::cross && qw == kw)) continue;
        const int qc = 2 * b + qw, kc = 2 * b + kw;
        connect_chunks(scratch.pairs, qruns, qc, zigzag_place(sp.rank, sp.size, b, qw, s.chunk), qseg, s.chunk,
                       scratch.kruns, kc, zigzag_place(src, sp.size, b, kw, s.chunk), kseg, s.chunk);
        if (!scratch.pairs.empty()) fn();
      }
}

}  // namespace

template <typename T>
void ring_attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const int32_t* seg,
                            const std::vector<SegmentRun>& runs, const RingShape& s, const SequenceParallel& sp,
                            RingScratch<T>& scratch) {
  prepare(scratch, s, sp);
  const size_t n = (size_t)s.tokens();
  std::fill(out, out + n * s.H * s.D, T(0));
  std::fill(lse, lse + n * s.H, -std::numeric_limits<T>::infinity());
  pack_own(scratch, k, v, seg, s);
  const size_t bytes = scratch.cur.size();
  for (int step = 0; step < sp.size; step++) {
    const int src = (sp.rank - step + sp.size) % sp.size;
    const bool more = step + 1 < sp.size;
    Exchange x(sp, more ? std::vector<Piece>{{scratch.cur.data(), bytes}} : std::vector<Piece>{},
               more ? std::vector<Piece>{{scratch.next.data(), bytes}} : std::vector<Piece>{});
    BlockView<T> b = view<T>(scratch.cur, s);
    for_each_connected(scratch, runs, seg, b.seg, src, s, sp, ChunkPairs::all, [&] {
      attention_block_forward(out, lse, q, runs, b.k, b.v, scratch.kruns, scratch.pairs, s.block(), scratch.tiles);
    });
    x.wait();
    scratch.cur.swap(scratch.next);
  }
}

template <typename T>
void ring_attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                             const T* lse, const int32_t* seg, const std::vector<SegmentRun>& runs, const RingShape& s,
                             const SequenceParallel& sp, RingScratch<T>& scratch) {
  prepare(scratch, s, sp);
  const size_t n = (size_t)s.tokens(), kv = n * s.KVH * s.D;
  std::fill(dq, dq + n * s.H * s.D, T(0));
  std::fill(dk, dk + kv, T(0));
  std::fill(dv, dv + kv, T(0));
  for (auto* a : {&scratch.acc_send, &scratch.acc_in, &scratch.own})
    if (a->size() != 2 * kv) a->assign(2 * kv, T(0));
  pack_own(scratch, k, v, seg, s);
  const size_t bytes = scratch.cur.size(), acc_bytes = 2 * kv * sizeof(T);
  const int last = sp.size - 1;
  auto own_block = [&](ChunkPairs which) {  // this rank's queries against its own keys, straight into dk/dv
    for_each_connected(scratch, runs, seg, seg, sp.rank, s, sp, which, [&] {
      attention_block_backward(dq, dk, dv, dout, q, out, lse, runs, k, v, scratch.kruns, scratch.pairs, s.block(),
                               scratch.tiles);
    });
  };
  // Every transfer overlaps compute, the last one included: the dK/dV accumulator of a block visits the other
  // ranks first and reaches its owner while the owner computes the second half of its own block.
  // Step 0: the own block's chunks against themselves, while the own K/V leave for the next rank.
  {
    Exchange x(sp, {{scratch.cur.data(), bytes}}, {{scratch.next.data(), bytes}});
    own_block(ChunkPairs::same);
    x.wait();
    scratch.cur.swap(scratch.next);
  }
  // Step t = 1 .. N-1: the block of rank src = rank - t. Meanwhile this rank sends the accumulator it finished
  // at t-1 and, unless last, the current block; it receives the current block's accumulator (from the previous
  // rank's step t-1) and the next block. The first visitor of a block starts its accumulator.
  for (int step = 1; step <= last; step++) {
    const int src = (sp.rank - step + sp.size) % sp.size;
    std::vector<Piece> sends, recvs;
    if (step > 1) {
      sends.push_back({scratch.acc_send.data(), acc_bytes});
      recvs.push_back({scratch.acc_in.data(), acc_bytes});
    }
    if (step < last) {
      sends.push_back({scratch.cur.data(), bytes});
      recvs.push_back({scratch.next.data(), bytes});
    }
    Exchange x(sp, sends, recvs);
    std::fill(scratch.own.begin(), scratch.own.end(), T(0));
    T* dk_block = scratch.own.data();
    T* dv_block = dk_block + kv;
    BlockView<T> b = view<T>(scratch.cur, s);
    for_each_connected(scratch, runs, seg, b.seg, src, s, sp, ChunkPairs::all, [&] {
      attention_block_backward(dq, dk_block, dv_block, dout, q, out, lse, runs, b.k, b.v, scratch.kruns, scratch.pairs,
                               s.block(), scratch.tiles);
    });
    x.wait();
    T* acc = scratch.acc_send.data();
    const T* in = scratch.acc_in.data();
    const T* own = scratch.own.data();
    if (step > 1) {
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < 2 * kv; i++) acc[i] = in[i] + own[i];
    } else {
      std::copy(own, own + 2 * kv, acc);
    }
    scratch.cur.swap(scratch.next);
  }
  // Last: the finished accumulator goes to the next rank, whose block it is, and ours comes from the previous
  // rank, while the own block's chunks are computed against each other.
  Exchange x(sp, {{scratch.acc_send.data(), acc_bytes}}, {{scratch.acc_in.data(), acc_bytes}});
  own_block(ChunkPairs::cross);
  x.wait();
  const T* in = scratch.acc_in.data();
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < kv; i++) {
    dk[i] += in[i];
    dv[i] += in[kv + i];
  }
}

template void ring_attention_forward<float>(float*, float*, const float*, const float*, const float*, const int32_t*,
                                            const std::vector<SegmentRun>&, const RingShape&, const SequenceParallel&,
                                            RingScratch<float>&);
template void ring_attention_forward<double>(double*, double*, const double*, const double*, const double*,
                                             const int32_t*, const std::vector<SegmentRun>&, const RingShape&,
                                             const SequenceParallel&, RingScratch<double>&);
template void ring_attention_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                             const float*, const float*, const float*, const int32_t*,
                                             const std::vector<SegmentRun>&, const RingShape&, const SequenceParallel&,
                                             RingScratch<float>&);
template void ring_attention_backward<double>(double*, double*, double*, const double*, const double*, const double*,
                                              const double*, const double*, const double*, const int32_t*,
                                              const std::vector<SegmentRun>&, const RingShape&, const SequenceParallel&,
                                              RingScratch<double>&);

}  // namespace rt
