#pragma once
// The tensor-core attention kernels (FlashAttention-2 style), included by flash_attention.cu and by the
// emulator test that removes a barrier on purpose. bf16 in, fp32 accumulation; wmma 16x16x16 tiles.
//
// A block has 4 warps and owns 64 rows (queries in the forward and dq, keys in dk/dv); each warp owns 16 of
// them. The other side streams through shared memory in tiles of 64 rows, loaded with 128-bit copies; in the
// forward and dq the K/V tiles are double-buffered, the next one arriving by asynchronous copies (cp.async, the
// pipeline primitives of cuda_pipeline.h, which the emulator implements) while the block computes with the
// current one. The
// layout of a wmma accumulator is unspecified, so whatever needs a per-row view (the online softmax, the
// rescaling of O, the masks) goes through shared memory: a warp stores its 16 x 64 score tile, each lane pair
// works on one row (lane / 2 is the row, lane % 2 the half of its columns), and the warp loads the result
// back as a matrix_a fragment. Softmax runs in base 2 (scores scaled by log2(e) / sqrt(D)); the kept
// log-sum-exp is in natural units, as the SIMT kernels and the CPU op keep it.
//
// Masks (a policy type, so the same kernels serve single-rank attention and the blocks of ring attention):
// PackedRows for packed rows, where query i sees key j iff seg_start[i] <= j <= i (seg_start is nondecreasing
// along a row, as both of its producers make it). A query tile reads only the key tiles from its first query's
// segment start to its last query, a key tile only the query tiles from its first key until a query's segment
// starts after its last key: tiles that no segment connects are never loaded. RingBlockRows for one block of
// ring attention (below).
#include <cuda_pipeline.h>
#include <mma.h>
#include <climits>
#include <cmath>
#include "attention.cuh"
#include "vector_io.cuh"

namespace rt::cuda::flash {

using namespace nvcuda;

constexpr int kRows = 64;  // rows a block owns
constexpr int kTile = 64;  // rows of the other side per streamed tile
constexpr int kWarps = 4, kThreads = kWarps * 32, kWarpRows = 16;
constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;

// Strides (elements) of the shared tiles, padded against bank conflicts; every one keeps the wmma rules (a
// 32-byte aligned fragment pointer, a leading dimension that is a multiple of 16 bytes).
template <int D>
struct Strides {
  static constexpr int head = D + 8;       // bf16 [rows][D]
  static constexpr int score = kTile + 4;  // fp32 [rows][kTile]
  static constexpr int prob = kTile + 8;   // bf16 [rows][kTile]
  static constexpr int acc = D + 4;        // fp32 [rows][D]
  static constexpr size_t head_bytes = sizeof(bf16) * kRows * head;
  static constexpr size_t score_bytes = sizeof(float) * kRows * score;
  static constexpr size_t prob_bytes = sizeof(bf16) * kRows * prob;
  static constexpr size_t acc_bytes = sizeof(float) * kRows * acc;
  // the end-of-kernel staging of fp32 [rows][D] results reuses the two score tiles
  static_assert(2 * score_bytes >= acc_bytes, "staging must fit the score tiles");
};

// Query i sees key j iff seg_start[i] <= j <= i, both in one packed row of T (row_base is b * T).
struct PackedRows {
  const int32_t* seg_start;
  int T;
  // the key tiles of the query tile at i0: [key_begin, key_end), each one checked by tiles_meet
  __device__ int key_begin(size_t row_base, int i0) const { return seg_start[row_base + i0]; }
  __device__ int key_end(int i0) const { return min(T, i0 + kRows); }
  __device__ bool tiles_meet(int, int) const { return true; }
  struct Query {
    int start, i;
  };
  __device__ Query query(size_t row_base, int i) const {
    return {i < T ? seg_start[row_base + i] : INT_MAX, i};  // past T: every key masked
  }
  __device__ bool sees(const Query& q, size_t, int j) const { return j >= q.start && j <= q.i; }
  // the query tiles of the key tile at j0 (last key jlast): from query_begin while more_queries
  __device__ int query_begin(int j0) const { return j0; }
  __device__ bool more_queries(size_t row_base, int qi0, int jlast) const {
    return qi0 < T && seg_start[row_base + qi0] <= jlast;
  }
  // what the dk/dv kernel stages per query of a tile, and the mask from a key's side
  __device__ int query_tag(size_t row_base, int i) const { return i < T ? seg_start[row_base + i] : INT_MAX; }
  struct Key {
    int j;
  };
  __device__ Key key(size_t, int j) const { return {j < T ? j : INT_MAX}; }
  __device__ bool seen_by(const Key& k, int tag, int i) const { return k.j <= i && tag <= k.j; }
};

// One block of ring attention (sequence parallelism, the zigzag layout of ring_attention.h): a kernel row is a
// local row of 2 * chunk tokens whose chunk w sits at position (w == 0 ? r : 2 * group - 1 - r) * chunk of the
// full row (r: the queries' rank for a query, src for a key). Query i sees key j iff both carry the same segment
// id and j's position is at most i's: causal on the diagonal block (rank == src), every key of a wholly earlier
// chunk, none of a later one. Positions grow along a local row, so a key tile meets a query tile iff its first
// key's position is at most the tile's last query's.
struct RingBlockRows {
  const int32_t *qseg, *kseg;
  int chunk, rank, src, group;
  __device__ int length() const { return 2 * chunk; }
  __device__ int position(int t, int r) const { return (t < chunk ? r : 2 * group - 1 - r) * chunk + t % chunk; }
  __device__ int key_begin(size_t, int) const { return 0; }
  __device__ int key_end(int) const { return length(); }
  __device__ bool tiles_meet(int q0, int k0) const {
    return position(k0, src) <= position(min(q0 + kRows, length()) - 1, rank);
  }
  struct Query {
    int seg, pos;
  };
  __device__ Query query(size_t row_base, int i) const {
    return i < length() ? Query{qseg[row_base + i], position(i, rank)} : Query{0, -1};  // past the row: none
  }
  __device__ bool sees(const Query& q, size_t row_base, int j) const {
    return j < length() && kseg[row_base + j] == q.seg && position(j, src) <= q.pos;
  }
  __device__ int query_begin(int) const { return 0; }
  __device__ bool more_queries(size_t, int qi0, int) const { return qi0 < length(); }
  __device__ int query_tag(size_t row_base, int i) const { return i < length() ? qseg[row_base + i] : 0; }
  struct Key {
    int seg, pos;
  };
  __device__ Key key(size_t row_base, int j) const {
    return j < length() ? Key{kseg[row_base + j], position(j, src)} : Key{0, INT_MAX};
  }
  __device__ bool seen_by(const Key& k, int tag, int i) const {
    return i < length() && tag == k.seg && k.pos <= position(i, rank);
  }
};

// Shared-memory regions carved from the dynamic allocation, each 128-byte aligned.
struct Carver {
  unsigned char* base;
  size_t used = 0;
  template <typename T>
  __device__ T* take(size_t bytes) {
    T* p = reinterpret_cast<T*>(base + used);
    used += (bytes + 127) / 128 * 128;
    return p;
  }
};
constexpr size_t carved(size_t bytes) { return (bytes + 127) / 128 * 128; }

template <int D>
constexpr size_t forward_smem() {
  using S = Strides<D>;  // Q, two K/V tile pairs
  return 5 * carved(S::head_bytes) + carved(S::score_bytes) + carved(S::prob_bytes) + carved(S::acc_bytes);
}
template <int D>
constexpr size_t dq_smem() {
  using S = Strides<D>;  // Q, dO, two K/V tile pairs
  return 6 * carved(S::head_bytes) + carved(2 * S::score_bytes) + carved(S::prob_bytes);
}
template <int D>
constexpr size_t dkdv_smem() {
  using S = Strides<D>;
  return 4 * carved(S::head_bytes) + carved(2 * S::score_bytes) + 2 * carved(S::prob_bytes) +
         3 * carved(sizeof(float) * kRows);
}

// Rows [r0, r0 + kRows) of one head (columns [col, col + D) of a [*, ld] matrix) into tile[kRows][D + 8];
// rows at or past r_end are zeros (their products are masked, but 0 * garbage could be NaN).
template <int D>
__device__ __forceinline__ void load_rows(bf16* tile, const bf16* src, size_t row_base, int ld, int col, int r0,
                                          int r_end) {
  constexpr int kChunks = D / 8;  // 128-bit chunks per row
  for (int idx = threadIdx.x; idx < kRows * kChunks; idx += kThreads) {
    const int r = idx / kChunks, c = idx % kChunks, row = r0 + r;
    bf16* to = tile + r * Strides<D>::head + c * 8;
    if (row < r_end) copy16(to, src + (row_base + row) * ld + col + c * 8);
    else zero16(to);
  }
}

// load_rows by asynchronous copies: the rows land when the calling thread waits for the group it commits them
// in (__pipeline_wait_prior), the zero rows at once.
template <int D>
__device__ __forceinline__ void load_rows_async(bf16* tile, const bf16* src, size_t row_base, int ld, int col, int r0,
                                                int r_end) {
  constexpr int kChunks = D / 8;
  for (int idx = threadIdx.x; idx < kRows * kChunks; idx += kThreads) {
    const int r = idx / kChunks, c = idx % kChunks, row = r0 + r;
    bf16* to = tile + r * Strides<D>::head + c * 8;
    if (row < r_end) __pipeline_memcpy_async(to, src + (row_base + row) * ld + col + c * 8, 16);
    else zero16(to);
  }
}

// What the emulator tests take out on purpose, to show that the emulator catches it: the barrier after a K/V
// tile has landed, or the wait for that tile (waiting one group short: the tile's copies are still in flight).
enum class Planted { none, no_barrier_after_tile, wait_one_group_short };

// The first key tile from k0 on that the mask lets the query tile at i0 meet (kend when none is left).
template <typename Mask>
__device__ __forceinline__ int next_key_tile(const Mask& mask, int i0, int k0, int kend) {
  while (k0 < kend && !mask.tiles_meet(i0, k0)) k0 += kTile;
  return k0;
}

// The double-buffered K/V tiles of the forward and dq kernels. Per tile: a barrier (every warp is done with the
// other buffer), the next tile's copies issued into it and committed, a wait for the current tile's group (the
// newest, the next tile's, may stay in flight), a barrier (every thread's copies of the current tile have landed).
// The buffers are four tiles from `tiles` on (K0, V0, K1, V1), addressed by arithmetic: an array of pointers
// indexed by the buffer number would live in local memory.
template <int D, Planted kPlanted>
struct KvPipeline {
  static constexpr size_t kTileElems = carved(Strides<D>::head_bytes) / sizeof(bf16);
  static constexpr size_t kBytes = 4 * carved(Strides<D>::head_bytes);
  bf16* tiles;
  const bf16 *k, *v;
  size_t row_base;
  int ld, col, kend;

  __device__ bf16* K(int buf) const { return tiles + 2 * buf * kTileElems; }
  __device__ bf16* V(int buf) const { return tiles + (2 * buf + 1) * kTileElems; }
  __device__ void issue(int buf, int k0) {
    if (k0 < kend) {
      load_rows_async<D>(K(buf), k, row_base, ld, col, k0, kend);
      load_rows_async<D>(V(buf), v, row_base, ld, col, k0, kend);
    }
    __pipeline_commit();  // an empty group past the last tile keeps the count of groups in flight the same
  }
  // Before computing with the tile in buffer buf, whose copies were issued by the previous step, and issuing
  // the one at k_next into the other buffer.
  __device__ void arrive(int buf, int k_next) {
    __syncthreads();
    issue(buf ^ 1, k_next);
    __pipeline_wait_prior(kPlanted == Planted::wait_one_group_short ? 2 : 1);
    if (kPlanted != Planted::no_barrier_after_tile) __syncthreads();
  }
};

// out[16][kTile] (fp32, stride Strides::score) = A[16][D] B^T where B is [kTile][D] (both bf16, stride head):
// one warp's score tile, Q K^T (forward, dq) or K Q^T (dk/dv).
template <int D>
__device__ __forceinline__ void warp_scores(float* out, const bf16* a, const bf16* b) {
  using S = Strides<D>;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa[D / 16];
  for (int kk = 0; kk < D / 16; kk++) wmma::load_matrix_sync(fa[kk], a + kk * 16, S::head);
  for (int n = 0; n < kTile / 16; n++) {
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.f);
    for (int kk = 0; kk < D / 16; kk++) {
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb;  // (d, n) at b[n * head + d]
      wmma::load_matrix_sync(fb, b + n * 16 * S::head + kk * 16, S::head);
      wmma::mma_sync(acc, fa[kk], fb, acc);
    }
    wmma::store_matrix_sync(out + n * 16, acc, S::score, wmma::mem_row_major);
  }
}

// acc[n] += P[16][kTile] X[kTile][D] for the D / 16 column blocks n (P bf16 stride prob, X bf16 stride head).
template <int D>
__device__ __forceinline__ void warp_accumulate(wmma::fragment<wmma::accumulator, 16, 16, 16, float> (&acc)[D / 16],
                                                const bf16* p, const bf16* x) {
  using S = Strides<D>;
  for (int kk = 0; kk < kTile / 16; kk++) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
    wmma::load_matrix_sync(fa, p + kk * 16, S::prob);
    for (int n = 0; n < D / 16; n++) {
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;
      wmma::load_matrix_sync(fb, x + kk * 16 * S::head + n * 16, S::head);
      wmma::mma_sync(acc[n], fa, fb, acc[n]);
    }
  }
}

// Writes acc (16 rows of this warp, fp32) as bf16 rows [row0, row0 + 16) of dst (columns [col, col + D) of a
// [*, ld] matrix), times `scale`, through the warp's rows of `stage`. Rows at or past `rows_end` are dropped.
template <int D>
__device__ __forceinline__ void warp_write_rows(bf16* dst, size_t row_base, int ld, int col, int row0, int rows_end,
                                                float* stage,
                                                wmma::fragment<wmma::accumulator, 16, 16, 16, float> (&acc)[D / 16],
                                                float scale) {
  using S = Strides<D>;
  for (int n = 0; n < D / 16; n++) wmma::store_matrix_sync(stage + n * 16, acc[n], S::acc, wmma::mem_row_major);
  __syncwarp();
  const int lane = threadIdx.x % 32;
  for (int idx = lane; idx < kWarpRows * (D / 8); idx += 32) {
    const int r = idx / (D / 8), c = (idx % (D / 8)) * 8, row = row0 + r;
    if (row >= rows_end) continue;
    alignas(16) bf16 v[8];
    for (int e = 0; e < 8; e++) v[e] = from_f<bf16>(stage[r * S::acc + c + e] * scale);
    copy16(dst + (row_base + row) * ld + col + c, v);
  }
  __syncwarp();
}

// ---- forward ----
// kPlanted is something else than none only in the emulator tests that show a missing barrier or wait is caught.
// A row that sees no key (possible in a ring block) gets out 0 and lse -inf.
template <int D, typename Mask, Planted kPlanted = Planted::none>
__global__ void __launch_bounds__(kThreads) forward_kernel(bf16* out, float* lse, const bf16* q, const bf16* k,
                                                           const bf16* v, Mask mask, AttnShape s, float scale_log2) {
  using S = Strides<D>;
  RT_DYNAMIC_SHARED(unsigned char, smem);
  Carver carve{smem};
  bf16* Qs = carve.take<bf16>(S::head_bytes);
  KvPipeline<D, kPlanted> kv;
  kv.tiles = carve.take<bf16>(kv.kBytes);
  float* Ss = carve.take<float>(S::score_bytes);
  bf16* Ps = carve.take<bf16>(S::prob_bytes);
  float* Os = carve.take<float>(S::acc_bytes);

  // the longest query tiles (the last, under the causal mask) are scheduled first
  const int i0 = (gridDim.x - 1 - blockIdx.x) * kRows;
  const int b = blockIdx.z, h = blockIdx.y, kvh = h / (s.H / s.KVH);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, half = lane % 2;
  const int r = warp * kWarpRows + lane / 2, i = i0 + r;  // this lane pair's query row
  const size_t row_base = (size_t)b * s.T;
  const int QD = s.qdim(), KD = s.kvdim();
  const int kend = mask.key_end(i0), kmin = mask.key_begin(row_base, i0);  // keys [kmin, kend)
  const typename Mask::Query me = mask.query(row_base, i);

  kv.k = k, kv.v = v, kv.row_base = row_base, kv.ld = KD, kv.col = kvh * D, kv.kend = kend;
  int k0 = next_key_tile(mask, i0, kmin, kend), buf = 0;
  kv.issue(0, k0);
  load_rows<D>(Qs, q, row_base, QD, h * D, i0, s.T);
  float* orow = Os + r * S::acc + half * (D / 2);
  for (int c = 0; c < D / 2; c++) orow[c] = 0.f;
  float m = -INFINITY, l = 0.f;  // running max (base-2 units) and sum of this row

  for (; k0 < kend; buf ^= 1) {
    const int k_next = next_key_tile(mask, i0, k0 + kTile, kend);
    kv.arrive(buf, k_next);  // (and, at the start, Q is loaded)
    const bf16 *Ks = kv.K(buf), *Vs = kv.V(buf);
    warp_scores<D>(Ss + warp * kWarpRows * S::score, Qs + warp * kWarpRows * S::head, Ks);
    __syncwarp();

    float* srow = Ss + r * S::score + half * (kTile / 2);
    bf16* prow = Ps + r * S::prob + half * (kTile / 2);
    float tile_max = -INFINITY;
    for (int c = 0; c < kTile / 2; c++) {
      const int j = k0 + half * (kTile / 2) + c;
      const float x = mask.sees(me, row_base, j) ? srow[c] * scale_log2 : -INFINITY;
      srow[c] = x;
      tile_max = fmaxf(tile_max, x);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    const float m_new = fmaxf(m, tile_max);
    const float m_use = m_new == -INFINITY ? 0.f : m_new;  // a row with no key yet: every p is 0, not NaN
    const float alpha = exp2f(m - m_use);
    float sum = 0.f;
    for (int c = 0; c < kTile / 2; c++) {
      const float p = exp2f(srow[c] - m_use);
      prow[c] = from_f<bf16>(p);
      sum += p;
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    l = l * alpha + sum;
    m = m_new;
    for (int c = 0; c < D / 2; c++) orow[c] *= alpha;
    __syncwarp();

    // O += P V, the accumulator round-tripping through shared memory (its rows were just rescaled there)
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[D / 16];
    float* ow = Os + warp * kWarpRows * S::acc;
    for (int n = 0; n < D / 16; n++) wmma::load_matrix_sync(acc[n], ow + n * 16, S::acc, wmma::mem_row_major);
    warp_accumulate<D>(acc, Ps + warp * kWarpRows * S::prob, Vs);
    for (int n = 0; n < D / 16; n++) wmma::store_matrix_sync(ow + n * 16, acc[n], S::acc, wmma::mem_row_major);
    __syncwarp();
    k0 = k_next;
  }
  if (i >= s.T) return;
  const float inv = l > 0.f ? 1.f / l : 0.f;
  bf16* dst = out + (row_base + i) * QD + h * D + half * (D / 2);
  for (int c = 0; c < D / 2; c += 8) {
    alignas(16) bf16 vals[8];
    for (int e = 0; e < 8; e++) vals[e] = from_f<bf16>(orow[c + e] * inv);
    copy16(dst + c, vals);
  }
  if (half == 0) lse[((size_t)b * s.H + h) * s.T + i] = l > 0.f ? (m + log2f(l)) * kLn2 : -INFINITY;
}

// ---- backward ----
// delta[b, h, i] = sum_d dout * out, one warp per (position, head), 8 dims per lane.
template <int D>
__global__ void delta_kernel(float* delta, const bf16* dout, const bf16* out, AttnShape s) {
  const size_t w = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (w >= (size_t)s.B * s.T * s.H) return;
  const int h = (int)(w % s.H);
  const size_t n = w / s.H;
  const size_t off = n * s.qdim() + (size_t)h * D;
  float acc = 0.f;
  if (lane < D / 8) {
    alignas(16) bf16 a[8], o[8];
    copy16(a, dout + off + lane * 8);
    copy16(o, out + off + lane * 8);
    for (int e = 0; e < 8; e++) acc += to_f(a[e]) * to_f(o[e]);
  }
  acc = warp_sum(acc);
  if (lane == 0) delta[((size_t)(n / s.T) * s.H + h) * s.T + n % s.T] = acc;
}

// dq: a block per query tile, keys streamed as in the forward. dq_i = scale * sum_j P_ij (dP_ij - delta_i) k_j.
template <int D, typename Mask>
__global__ void __launch_bounds__(kThreads)
    dq_kernel(bf16* dq, const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse,
              const float* delta, Mask mask, AttnShape s, float scale) {
  using S = Strides<D>;
  RT_DYNAMIC_SHARED(unsigned char, smem);
  Carver carve{smem};
  bf16* Qs = carve.take<bf16>(S::head_bytes);
  bf16* dOs = carve.take<bf16>(S::head_bytes);
  KvPipeline<D, Planted::none> kv;
  kv.tiles = carve.take<bf16>(kv.kBytes);
  float* Ss = carve.take<float>(2 * S::score_bytes);  // scores, then dP; at the end the dq staging
  float* dPs = Ss + kRows * S::score;
  bf16* dSs = carve.take<bf16>(S::prob_bytes);

  const int i0 = (gridDim.x - 1 - blockIdx.x) * kRows;
  const int b = blockIdx.z, h = blockIdx.y, kvh = h / (s.H / s.KVH);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, half = lane % 2;
  const int r = warp * kWarpRows + lane / 2, i = i0 + r;
  const size_t row_base = (size_t)b * s.T;
  const int QD = s.qdim(), KD = s.kvdim();
  const int kend = mask.key_end(i0), kmin = mask.key_begin(row_base, i0);
  const bool valid = i < s.T;
  const typename Mask::Query me = mask.query(row_base, i);
  const size_t stat = ((size_t)b * s.H + h) * s.T + i;
  const float lse2 = valid ? lse[stat] * kLog2e : 0.f, di = valid ? delta[stat] : 0.f;
  const float scale_log2 = scale * kLog2e;

  kv.k = k, kv.v = v, kv.row_base = row_base, kv.ld = KD, kv.col = kvh * D, kv.kend = kend;
  int k0 = next_key_tile(mask, i0, kmin, kend), buf = 0;
  kv.issue(0, k0);
  load_rows<D>(Qs, q, row_base, QD, h * D, i0, s.T);
  load_rows<D>(dOs, dout, row_base, QD, h * D, i0, s.T);
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[D / 16];
  for (int n = 0; n < D / 16; n++) wmma::fill_fragment(acc[n], 0.f);

  for (; k0 < kend; buf ^= 1) {
    const int k_next = next_key_tile(mask, i0, k0 + kTile, kend);
    kv.arrive(buf, k_next);
    const bf16 *Ks = kv.K(buf), *Vs = kv.V(buf);
    warp_scores<D>(Ss + warp * kWarpRows * S::score, Qs + warp * kWarpRows * S::head, Ks);
    warp_scores<D>(dPs + warp * kWarpRows * S::score, dOs + warp * kWarpRows * S::head, Vs);
    __syncwarp();
    const float* srow = Ss + r * S::score + half * (kTile / 2);
    const float* dprow = dPs + r * S::score + half * (kTile / 2);
    bf16* dsrow = dSs + r * S::prob + half * (kTile / 2);
    for (int c = 0; c < kTile / 2; c++) {
      const int j = k0 + half * (kTile / 2) + c;
      const float p = mask.sees(me, row_base, j) ? exp2f(srow[c] * scale_log2 - lse2) : 0.f;
      dsrow[c] = from_f<bf16>(p * (dprow[c] - di));
    }
    __syncwarp();
    warp_accumulate<D>(acc, dSs + warp * kWarpRows * S::prob, Ks);
    k0 = k_next;
  }
  __syncthreads();  // the staging below overwrites other warps' score rows
  warp_write_rows<D>(dq, row_base, QD, h * D, i0 + warp * kWarpRows, s.T, Ss + warp * kWarpRows * S::acc, acc, scale);
}

// dk, dv: a block per key tile, summed over the query heads of its group (no atomics);
// dv_j = sum_i P_ij dout_i, dk_j = scale * sum_i P_ij (dP_ij - delta_i) q_i.
// At least one block per SM, no more asked: without it ptxas caps the kernel at 128 registers for sm_86/sm_89 and
// 168 for sm_80 and spills dK/dV accumulators there (sm_90 did not); with it, up to 255 and no local memory.
template <int D, typename Mask>
__global__ void __launch_bounds__(kThreads, 1)
    dkdv_kernel(bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse,
                const float* delta, Mask mask, AttnShape s, float scale) {
  using S = Strides<D>;
  RT_DYNAMIC_SHARED(unsigned char, smem);
  Carver carve{smem};
  bf16* Ks = carve.take<bf16>(S::head_bytes);
  bf16* Vs = carve.take<bf16>(S::head_bytes);
  bf16* Qs = carve.take<bf16>(S::head_bytes);
  bf16* dOs = carve.take<bf16>(S::head_bytes);
  float* Sts = carve.take<float>(2 * S::score_bytes);  // K Q^T, then V dO^T; at the end the staging
  float* dPts = Sts + kRows * S::score;
  bf16* Pts = carve.take<bf16>(S::prob_bytes);
  bf16* dSts = carve.take<bf16>(S::prob_bytes);
  float* Lq = carve.take<float>(sizeof(float) * kRows);  // the query tile's lse (base 2)
  float* Dq = carve.take<float>(sizeof(float) * kRows);  // and delta
  int* Sq = carve.take<int>(sizeof(int) * kRows);        // and the mask's tags (segment starts or ids)

  const int j0 = blockIdx.x * kRows;  // the first key tiles see the most queries: scheduled first
  const int b = blockIdx.z, kvh = blockIdx.y, group = s.H / s.KVH;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, half = lane % 2;
  const int r = warp * kWarpRows + lane / 2, j = j0 + r;  // this lane pair's key
  const size_t row_base = (size_t)b * s.T;
  const int QD = s.qdim(), KD = s.kvdim();
  const int jlast = min(s.T, j0 + kRows) - 1;
  const float scale_log2 = scale * kLog2e;
  const typename Mask::Key mine = mask.key(row_base, j);

  load_rows<D>(Ks, k, row_base, KD, kvh * D, j0, s.T);
  load_rows<D>(Vs, v, row_base, KD, kvh * D, j0, s.T);
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> dk_acc[D / 16], dv_acc[D / 16];
  for (int n = 0; n < D / 16; n++) {
    wmma::fill_fragment(dk_acc[n], 0.f);
    wmma::fill_fragment(dv_acc[n], 0.f);
  }
  for (int h = kvh * group; h < (kvh + 1) * group; h++) {
    // query tiles from j0 on, until a query's segment starts after this block's last key
    for (int qi0 = mask.query_begin(j0); mask.more_queries(row_base, qi0, jlast); qi0 += kRows) {
      if (!mask.tiles_meet(qi0, j0)) continue;  // the same for the whole block
      __syncthreads();                          // every warp is done with the previous query tile
      load_rows<D>(Qs, q, row_base, QD, h * D, qi0, s.T);
      load_rows<D>(dOs, dout, row_base, QD, h * D, qi0, s.T);
      for (int t = threadIdx.x; t < kRows; t += kThreads) {
        const int row = qi0 + t;
        const size_t stat = ((size_t)b * s.H + h) * s.T + row;
        Lq[t] = row < s.T ? lse[stat] * kLog2e : 0.f;
        Dq[t] = row < s.T ? delta[stat] : 0.f;
        Sq[t] = mask.query_tag(row_base, row);
      }
      __syncthreads();
      warp_scores<D>(Sts + warp * kWarpRows * S::score, Ks + warp * kWarpRows * S::head, Qs);
      warp_scores<D>(dPts + warp * kWarpRows * S::score, Vs + warp * kWarpRows * S::head, dOs);
      __syncwarp();
      const float* srow = Sts + r * S::score + half * (kTile / 2);
      const float* dprow = dPts + r * S::score + half * (kTile / 2);
      bf16* prow = Pts + r * S::prob + half * (kTile / 2);
      bf16* dsrow = dSts + r * S::prob + half * (kTile / 2);
      for (int c = 0; c < kTile / 2; c++) {
        const int t = half * (kTile / 2) + c, i = qi0 + t;
        const bool seen = mask.seen_by(mine, Sq[t], i);
        const float p = seen ? exp2f(srow[c] * scale_log2 - Lq[t]) : 0.f;
        prow[c] = from_f<bf16>(p);
        dsrow[c] = from_f<bf16>(p * (dprow[c] - Dq[t]));
      }
      __syncwarp();
      warp_accumulate<D>(dv_acc, Pts + warp * kWarpRows * S::prob, dOs);
      warp_accumulate<D>(dk_acc, dSts + warp * kWarpRows * S::prob, Qs);
    }
  }
  __syncthreads();  // the staging below overwrites other warps' score rows
  float* stage = Sts + warp * kWarpRows * S::acc;
  warp_write_rows<D>(dv, row_base, KD, kvh * D, j0 + warp * kWarpRows, s.T, stage, dv_acc, 1.f);
  warp_write_rows<D>(dk, row_base, KD, kvh * D, j0 + warp * kWarpRows, s.T, stage, dk_acc, scale);
}

// ---- launchers (shapes checked by the public entries in flash_attention.cu) ----
template <auto K, typename... A>
void launch_with_smem(dim3 grid, size_t smem, cudaStream_t stream, const char* op, const A&... args) {
  // above 48 KiB a kernel must opt in (per device, so on every call: a cheap host-side attribute)
  CUDA_CHECK(cudaFuncSetAttribute(K, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  launch<K>(grid, kThreads, smem, stream, args...);
  CUDA_LAUNCH_CHECK(op);
}

inline unsigned tiles(int T) { return grid_for((size_t)T, kRows); }

template <int D, typename Mask, Planted kPlanted = Planted::none>
void launch_forward_masked(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, const Mask& mask,
                           const AttnShape& s, cudaStream_t stream) {
  const float scale_log2 = (float)(1.0 / std::sqrt((double)D)) * kLog2e;
  launch_with_smem<forward_kernel<D, Mask, kPlanted>>(dim3(tiles(s.T), s.H, s.B), forward_smem<D>(), stream,
                                                      "flash_attention_forward", out, lse, q, k, v, mask, s,
                                                      scale_log2);
}

template <int D, Planted kPlanted = Planted::none>
void launch_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, const int32_t* seg_start,
                    const AttnShape& s, cudaStream_t stream) {
  launch_forward_masked<D, PackedRows, kPlanted>(out, lse, q, k, v, PackedRows{seg_start, s.T}, s, stream);
}

// dq (written) and dk, dv (written) from lse and delta [B, H, T].
template <int D, typename Mask>
void launch_gradients(bf16* dq, bf16* dk, bf16* dv, const float* delta, const bf16* dout, const bf16* q, const bf16* k,
                      const bf16* v, const float* lse, const Mask& mask, const AttnShape& s, cudaStream_t stream) {
  const float scale = (float)(1.0 / std::sqrt((double)D));
  launch_with_smem<dq_kernel<D, Mask>>(dim3(tiles(s.T), s.H, s.B), dq_smem<D>(), stream,
                                       "flash_attention_backward (dq)", dq, dout, q, k, v, lse, delta, mask, s, scale);
  launch_with_smem<dkdv_kernel<D, Mask>>(dim3(tiles(s.T), s.KVH, s.B), dkdv_smem<D>(), stream,
                                         "flash_attention_backward (dk, dv)", dk, dv, dout, q, k, v, lse, delta, mask,
                                         s, scale);
}

template <int D>
void launch_backward(bf16* dq, bf16* dk, bf16* dv, float* delta, const bf16* dout, const bf16* q, const bf16* k,
                     const bf16* v, const bf16* out, const float* lse, const int32_t* seg_start, const AttnShape& s,
                     cudaStream_t stream) {
  const size_t warps = (size_t)s.B * s.T * s.H;
  launch<delta_kernel<D>>(grid_for(warps * 32, 256), 256, 0, stream, delta, dout, out, s);
  CUDA_LAUNCH_CHECK("flash_attention_backward (delta)");
  launch_gradients<D>(dq, dk, dv, delta, dout, q, k, v, lse, PackedRows{seg_start, s.T}, s, stream);
}

}  // namespace rt::cuda::flash
