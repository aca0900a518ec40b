#pragma once
// The CUDA emulator's stand-in for mma.h: nvcuda::wmma fragments and their warp-wide operations. A fragment
// holds rows x cols / 32 elements per lane (element e of lane l is the (e * 32 + l)-th in row-major order; the
// GPU's own layout is unspecified, so code may not depend on it). load, store and mma are meetings of all 32
// lanes: the last lane to arrive does the work for the warp, reading and writing memory at that point.
// mma_sync multiplies in fp32 (bf16 products are exact in fp32) and accumulates in fp32.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K>
struct fragment_shape;
template <int M, int N, int K>
struct fragment_shape<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct fragment_shape<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct fragment_shape<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static constexpr int rows = fragment_shape<Use, M, N, K>::rows, cols = fragment_shape<Use, M, N, K>::cols;
  static constexpr int num_elements = rows * cols / 32;
  T x[num_elements];
};

template <typename Use, int M, int N, int K, typename T, typename L, typename V>
inline void fill_fragment(fragment<Use, M, N, K, T, L>& f, const V& v) {
  for (int e = 0; e < f.num_elements; e++) f.x[e] = T(v);
}

namespace detail {

template <typename Frag, typename Mem>
struct MoveLane {
  Frag* frag;
  Mem* ptr;
  unsigned ldm;
  bool col;
};
// memory -> fragments (load) or fragments -> memory (store), one element of each lane at a time
template <typename Frag, typename Mem, bool Store>
void move_op(void* const* lane_ctx, uint32_t lanes) {
  const auto* first = static_cast<const MoveLane<Frag, Mem>*>(lane_ctx[0]);
  for (int l = 0; l < 32; l++) {
    const auto* c = static_cast<const MoveLane<Frag, Mem>*>(lane_ctx[l]);
    if (!c || c->ptr != first->ptr || c->ldm != first->ldm || c->col != first->col)
      ringtune_emu::fail_in_kernel("wmma load/store: the lanes of a warp passed different pointers or ldm");
  }
  (void)lanes;
  // the GPU's requirements: a 256-bit aligned pointer, ldm a multiple of 16 bytes
  if ((uintptr_t)first->ptr % 32 != 0 || (first->ldm * sizeof(Mem)) % 16 != 0)
    ringtune_emu::fail_in_kernel("wmma load/store: the pointer must be 32-byte aligned and ldm a multiple of 16 bytes");
  for (int l = 0; l < 32; l++) {
    Frag& f = *static_cast<const MoveLane<Frag, Mem>*>(lane_ctx[l])->frag;
    for (int e = 0; e < Frag::num_elements; e++) {
      const int i = e * 32 + l, r = i / Frag::cols, c = i % Frag::cols;
      Mem* at = first->ptr + (first->col ? (size_t)c * first->ldm + r : (size_t)r * first->ldm + c);
      if constexpr (Store) *at = Mem(f.x[e]);
      else f.x[e] = *at;
    }
  }
}

template <typename FD, typename FA, typename FB, typename FC>
struct MmaLane {
  FD* d;
  const FA* a;
  const FB* b;
  const FC* c;
};
template <typename F>
void gather(float* out, void* const* lane_ctx, const F* (*pick)(void*)) {
  for (int l = 0; l < 32; l++) {
    const F* f = pick(lane_ctx[l]);
    for (int e = 0; e < F::num_elements; e++) out[e * 32 + l] = float(f->x[e]);
  }
}
template <typename FD, typename FA, typename FB, typename FC>
void mma_op(void* const* lane_ctx, uint32_t) {
  using Lane = MmaLane<FD, FA, FB, FC>;
  constexpr int M = FD::rows, N = FD::cols, K = FA::cols;
  float a[M * K], b[K * N], c[M * N];
  gather<FA>(a, lane_ctx, [](void* p) { return static_cast<Lane*>(p)->a; });
  gather<FB>(b, lane_ctx, [](void* p) { return static_cast<Lane*>(p)->b; });
  gather<FC>(c, lane_ctx, [](void* p) { return static_cast<Lane*>(p)->c; });
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++) {
      float acc = c[m * N + n];
      for (int k = 0; k < K; k++) acc += a[m * K + k] * b[k * N + n];
      c[m * N + n] = acc;
    }
  for (int l = 0; l < 32; l++) {
    FD* d = static_cast<Lane*>(lane_ctx[l])->d;
    for (int e = 0; e < FD::num_elements; e++) d->x[e] = c[e * 32 + l];
  }
}

}  // namespace detail

template <typename Use, int M, int N, int K, typename T, typename L, typename Mem>
void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const Mem* p, unsigned ldm) {
  using Frag = fragment<Use, M, N, K, T, L>;
  detail::MoveLane<Frag, const Mem> c{&f, p, ldm, std::is_same_v<L, col_major>};
  ringtune_emu::warp_collective(0xffffffffu, detail::move_op<Frag, const Mem, false>, &c, "wmma::load_matrix_sync");
}
template <int M, int N, int K, typename T, typename Mem>
void load_matrix_sync(fragment<accumulator, M, N, K, T>& f, const Mem* p, unsigned ldm, layout_t layout) {
  using Frag = fragment<accumulator, M, N, K, T>;
  detail::MoveLane<Frag, const Mem> c{&f, p, ldm, layout == mem_col_major};
  ringtune_emu::warp_collective(0xffffffffu, detail::move_op<Frag, const Mem, false>, &c, "wmma::load_matrix_sync");
}
template <int M, int N, int K, typename T, typename Mem>
void store_matrix_sync(Mem* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm, layout_t layout) {
  using Frag = fragment<accumulator, M, N, K, T>;
  detail::MoveLane<Frag, Mem> c{const_cast<Frag*>(&f), p, ldm, layout == mem_col_major};
  ringtune_emu::warp_collective(0xffffffffu, detail::move_op<Frag, Mem, true>, &c, "wmma::store_matrix_sync");
}
template <typename FD, typename FA, typename FB, typename FC>
void mma_sync(FD& d, const FA& a, const FB& b, const FC& c) {
  detail::MmaLane<FD, FA, FB, FC> l{&d, &a, &b, &c};
  ringtune_emu::warp_collective(0xffffffffu, detail::mma_op<FD, FA, FB, FC>, &l, "wmma::mma_sync");
}

}  // namespace nvcuda::wmma
