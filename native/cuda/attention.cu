// SIMT flash attention: G threads per query row (forward, dq) or per key row (dk, dv), each holding DT = D / G
// of the head's dimensions (at most 32, so the per-thread accumulators stay in registers: no local-memory
// spills at D = 128); dot products are summed across the G threads with shuffles. Tiles of the other side
// live in shared memory, fp32 math. Correct for any T and segment layout; not yet on tensor cores (see
// native/cuda/README.md).
#include <cmath>
#include <type_traits>
#include "attention.cuh"
#include "flash_attention.cuh"
#include "vector_io.cuh"

namespace rt::cuda {
namespace {

constexpr int kRows = 64;  // query rows (forward, dq) per block

// threads per row and dimensions per thread; thread `part` of a row owns dimensions part, part + G, ...
// (interleaved, so the G threads of a row read consecutive shared-memory words: no bank conflicts)
template <int D>
__host__ __device__ constexpr int groups() {
  return D <= 32 ? 1 : D / 32;
}
template <int D>
__host__ __device__ constexpr int dims_per_thread() {
  return D / groups<D>();
}

template <int D>
__host__ __device__ constexpr int key_tile() {
  return D <= 64 ? 64 : 32;
}
// key rows per dk/dv block: the padded K and V rows must fit 48 KB of shared memory
template <int D>
__host__ __device__ constexpr int dkdv_rows() {
  return D <= 64 ? 64 : 32;
}

// The lanes of this thread's row group (G consecutive lanes of one warp).
template <int G>
__device__ __forceinline__ unsigned group_mask() {
  if constexpr (G == 32) return 0xffffffffu;
  const unsigned lane = threadIdx.x % 32;
  return ((1u << G) - 1) << (lane / G * G);
}
// Sums a and b over the row group; every thread of the group gets both totals.
template <int G>
__device__ __forceinline__ void group_sum2(float& a, float& b) {
  if constexpr (G > 1) {
    const unsigned mask = group_mask<G>();
    for (int o = G / 2; o > 0; o >>= 1) {
      a += __shfl_xor_sync(mask, a, o);
      b += __shfl_xor_sync(mask, b, o);
    }
  }
}
template <int G>
__device__ __forceinline__ float group_sum(float a) {
  if constexpr (G > 1) {
    const unsigned mask = group_mask<G>();
    for (int o = G / 2; o > 0; o >>= 1) a += __shfl_xor_sync(mask, a, o);
  }
  return a;
}

__global__ void segment_starts_kernel(int32_t* seg_start, const int32_t* seg, int B, int T) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= B) return;
  const int32_t* s = seg + (size_t)b * T;
  int32_t* out = seg_start + (size_t)b * T;
  int start = 0;
  for (int t = 0; t < T; t++) {
    if (t > 0 && s[t] != s[t - 1]) start = t;
    out[t] = start;
  }
}

// Loads rows [r0, r0 + rows) of one head (columns [col, col + D)) of a [*, ld] matrix into tile[rows][D],
// zeros past r_end.
template <typename T, int D, int STRIDE>
__device__ __forceinline__ void load_tile(float (*tile)[STRIDE], const T* src, size_t row_base, int ld, int col, int r0,
                                          int rows, int r_end) {
  for (int idx = threadIdx.x; idx < rows * D; idx += blockDim.x) {
    const int r = idx / D, d = idx % D, row = r0 + r;
    tile[r][d] = row < r_end ? to_f(src[(row_base + row) * ld + col + d]) : 0.f;
  }
}

// The first key any query of this block's tile [i0, i0 + kRows) may attend to: the earliest segment start
// among its rows. Every thread of the block must call it (it synchronises).
__device__ int tile_first_key(const int32_t* seg_start, size_t row_base, int i, bool valid, int T) {
  __shared__ int kmin_shared;
  const int start = valid ? seg_start[row_base + i] : T;
  if (threadIdx.x == 0) kmin_shared = T;
  __syncthreads();
  if (valid) atomicMin(&kmin_shared, start);
  __syncthreads();
  return kmin_shared;
}

template <typename T, int D>
__global__ void __launch_bounds__(kRows* groups<D>())
    attention_forward_kernel(T* out, float* lse, const T* q, const T* k, const T* v, const int32_t* seg_start,
                             AttnShape s, float scale) {
  constexpr int KT = key_tile<D>(), G = groups<D>(), DT = dims_per_thread<D>();
  __shared__ float Ks[KT][D], Vs[KT][D];
  const int b = blockIdx.z, h = blockIdx.y, kvh = h / (s.H / s.KVH);
  const int part = threadIdx.x % G;
  const int i0 = blockIdx.x * kRows, i = i0 + threadIdx.x / G;
  const bool valid = i < s.T;
  const size_t row_base = (size_t)b * s.T;
  const int QD = s.qdim(), KD = s.kvdim();
  const int start = valid ? seg_start[row_base + i] : s.T;
  const int kmin = tile_first_key(seg_start, row_base, i, valid, s.T),
            kend = min(s.T, i0 + kRows);  // keys [kmin, kend)

  float qr[DT], o[DT];
#pragma unroll
  for (int e = 0; e < DT; e++) {
    qr[e] = valid ? to_f(q[(row_base + i) * QD + h * D + part + e * G]) * scale : 0.f;
    o[e] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int k0 = kmin; k0 < kend; k0 += KT) {
    load_tile<T, D, D>(Ks, k, row_base, KD, kvh * D, k0, KT, kend);
    load_tile<T, D, D>(Vs, v, row_base, KD, kvh * D, k0, KT, kend);
    __syncthreads();
    if (valid) {
      const int jlo = max(start, k0) - k0, jhi = min(i, k0 + KT - 1) - k0;
      for (int j = jlo; j <= jhi; j++) {
        float sc = 0.f;
#pragma unroll
        for (int e = 0; e < DT; e++) sc += qr[e] * Ks[j][part + e * G];
        sc = group_sum<G>(sc);
        if (sc > m) {
          const float c = expf(m - sc);  // 0 on the first key (m = -inf)
          l *= c;
#pragma unroll
          for (int e = 0; e < DT; e++) o[e] *= c;
          m = sc;
        }
        const float p = expf(sc - m);
        l += p;
#pragma unroll
        for (int e = 0; e < DT; e++) o[e] += p * Vs[j][part + e * G];
      }
    }
    __syncthreads();
  }
  if (!valid) return;
  const float inv = 1.f / l;
#pragma unroll
  for (int e = 0; e < DT; e++) out[(row_base + i) * QD + h * D + part + e * G] = from_f<T>(o[e] * inv);
  if (part == 0) lse[((size_t)b * s.H + h) * s.T + i] = m + logf(l);
}

// delta[b, h, i] = sum_d dout * out (one warp per (position, head))
template <typename T>
__global__ void attention_delta_kernel(float* delta, const T* dout, const T* out, AttnShape s) {
  const size_t w = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (w >= (size_t)s.B * s.T * s.H) return;
  const int h = (int)(w % s.H);
  const size_t n = w / s.H;
  const int b = (int)(n / s.T), i = (int)(n % s.T);
  const size_t off = n * s.qdim() + (size_t)h * s.D;
  float acc = 0.f;
  for (int d = lane; d < s.D; d += 32) acc += to_f(dout[off + d]) * to_f(out[off + d]);
  acc = warp_sum(acc);
  if (lane == 0) delta[((size_t)b * s.H + h) * s.T + i] = acc;
}

// dq: G threads per query row; keys in tiles as in the forward. dq_i = scale * sum_j P_ij (dP_ij - delta_i) k_j.
template <typename T, int D>
__global__ void __launch_bounds__(kRows* groups<D>())
    attention_dq_kernel(T* dq, const T* dout, const T* q, const T* k, const T* v, const float* lse, const float* delta,
                        const int32_t* seg_start, AttnShape s, float scale) {
  constexpr int KT = key_tile<D>(), G = groups<D>(), DT = dims_per_thread<D>();
  __shared__ float Ks[KT][D], Vs[KT][D];
  const int b = blockIdx.z, h = blockIdx.y, kvh = h / (s.H / s.KVH);
  const int part = threadIdx.x % G;
  const int i0 = blockIdx.x * kRows, i = i0 + threadIdx.x / G;
  const bool valid = i < s.T;
  const size_t row_base = (size_t)b * s.T;
  const int QD = s.qdim(), KD = s.kvdim();
  const int start = valid ? seg_start[row_base + i] : s.T;
  const int kmin = tile_first_key(seg_start, row_base, i, valid, s.T), kend = min(s.T, i0 + kRows);
  const size_t stat = ((size_t)b * s.H + h) * s.T + i;
  const float L = valid ? lse[stat] : 0.f, Di = valid ? delta[stat] : 0.f;

  float qr[DT], dor[DT], acc[DT];
#pragma unroll
  for (int e = 0; e < DT; e++) {
    const size_t at = (row_base + i) * QD + h * D + part + e * G;
    qr[e] = valid ? to_f(q[at]) * scale : 0.f;
    dor[e] = valid ? to_f(dout[at]) : 0.f;
    acc[e] = 0.f;
  }
  for (int k0 = kmin; k0 < kend; k0 += KT) {
    load_tile<T, D, D>(Ks, k, row_base, KD, kvh * D, k0, KT, kend);
    load_tile<T, D, D>(Vs, v, row_base, KD, kvh * D, k0, KT, kend);
    __syncthreads();
    if (valid) {
      const int jlo = max(start, k0) - k0, jhi = min(i, k0 + KT - 1) - k0;
      for (int j = jlo; j <= jhi; j++) {
        float sc = 0.f, dp = 0.f;
#pragma unroll
        for (int e = 0; e < DT; e++) {
          sc += qr[e] * Ks[j][part + e * G];
          dp += dor[e] * Vs[j][part + e * G];
        }
        group_sum2<G>(sc, dp);
        const float ds = expf(sc - L) * (dp - Di);
#pragma unroll
        for (int e = 0; e < DT; e++) acc[e] += ds * Ks[j][part + e * G];
      }
    }
    __syncthreads();
  }
  if (!valid) return;
#pragma unroll
  for (int e = 0; e < DT; e++) dq[(row_base + i) * QD + h * D + part + e * G] = from_f<T>(acc[e] * scale);
}

// dk, dv: G threads per key row j, summed over the query heads of its group; queries in tiles of QT.
// dv_j = sum_i P_ij dout_i;  dk_j = scale * sum_i P_ij (dP_ij - delta_i) q_i
template <typename T, int D>
__global__ void __launch_bounds__(dkdv_rows<D>() * groups<D>())
    attention_dkdv_kernel(T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const float* lse,
                          const float* delta, const int32_t* seg_start, AttnShape s, float scale) {
  constexpr int QT = D <= 64 ? 16 : 8;
  constexpr int KR = dkdv_rows<D>(), G = groups<D>(), DT = dims_per_thread<D>();
  __shared__ float Kr[KR][D + 1], Vr[KR][D + 1];  // this block's keys (padded rows)
  __shared__ float Qs[QT][D], dOs[QT][D];
  __shared__ float Ls[QT], Ds[QT];
  __shared__ int Ss[QT];
  const int b = blockIdx.z, kvh = blockIdx.y, group = s.H / s.KVH;
  const int part = threadIdx.x % G, jr = threadIdx.x / G;
  const int j0 = blockIdx.x * KR, j = j0 + jr;
  const bool valid = j < s.T;
  const size_t row_base = (size_t)b * s.T;
  const int QD = s.qdim(), KD = s.kvdim();
  const int jlast = min(s.T, j0 + KR) - 1;
  load_tile<T, D, D + 1>(Kr, k, row_base, KD, kvh * D, j0, KR, s.T);
  load_tile<T, D, D + 1>(Vr, v, row_base, KD, kvh * D, j0, KR, s.T);
  float dkr[DT], dvr[DT];
#pragma unroll
  for (int e = 0; e < DT; e++) dkr[e] = dvr[e] = 0.f;
  for (int h = kvh * group; h < (kvh + 1) * group; h++) {
    // queries from j0 on, until a query's segment starts after this block's last key (starts never decrease)
    for (int qi0 = j0; qi0 < s.T && seg_start[row_base + qi0] <= jlast; qi0 += QT) {
      __syncthreads();
      for (int idx = threadIdx.x; idx < QT * D; idx += blockDim.x) {
        const int r = idx / D, d = idx % D, row = qi0 + r;
        const size_t at = (row_base + row) * QD + h * D + d;
        Qs[r][d] = row < s.T ? to_f(q[at]) * scale : 0.f;
        dOs[r][d] = row < s.T ? to_f(dout[at]) : 0.f;
      }
      for (int r = threadIdx.x; r < QT; r += blockDim.x) {
        const int row = qi0 + r;
        const size_t stat = ((size_t)b * s.H + h) * s.T + row;
        Ls[r] = row < s.T ? lse[stat] : 0.f;
        Ds[r] = row < s.T ? delta[stat] : 0.f;
        Ss[r] = row < s.T ? seg_start[row_base + row] : s.T;  // s.T > any j: masked
      }
      __syncthreads();
      if (!valid) continue;
      for (int r = 0; r < QT; r++) {
        const int i = qi0 + r;
        if (i < j || Ss[r] > j) continue;
        float sc = 0.f, dp = 0.f;
#pragma unroll
        for (int e = 0; e < DT; e++) {
          sc += Qs[r][part + e * G] * Kr[jr][part + e * G];
          dp += dOs[r][part + e * G] * Vr[jr][part + e * G];
        }
        group_sum2<G>(sc, dp);
        const float p = expf(sc - Ls[r]);
        const float ds = p * (dp - Ds[r]);
#pragma unroll
        for (int e = 0; e < DT; e++) {
          dvr[e] += p * dOs[r][part + e * G];
          dkr[e] += ds * Qs[r][part + e * G];  // Qs already carries the scale
        }
      }
    }
  }
  if (!valid) return;
#pragma unroll
  for (int e = 0; e < DT; e++) {
    dk[(row_base + j) * KD + kvh * D + part + e * G] = from_f<T>(dkr[e]);
    dv[(row_base + j) * KD + kvh * D + part + e * G] = from_f<T>(dvr[e]);
  }
}

void check_shape(const AttnShape& s, const char* op) {
  require(s.B > 0 && s.T > 0 && s.H > 0 && s.KVH > 0 && s.H % s.KVH == 0, op, "bad shape B=", s.B, " T=", s.T,
          " H=", s.H, " KVH=", s.KVH, " (H must be a multiple of KVH)");
  require(s.D == 32 || s.D == 64 || s.D == 128, op, "head_dim ", s.D, " not supported (32, 64, 128)");
}

template <typename T, int D>
void forward_d(T* out, float* lse, const T* q, const T* k, const T* v, const int32_t* seg_start, const AttnShape& s,
               cudaStream_t stream) {
  const dim3 grid(grid_for(s.T, kRows), s.H, s.B);
  launch<attention_forward_kernel<T, D>>(grid, kRows * groups<D>(), 0, stream, out, lse, q, k, v, seg_start, s,
                                         (float)(1.0 / std::sqrt((double)D)));
  CUDA_LAUNCH_CHECK("attention_forward");
}

template <typename T, int D>
void backward_d(T* dq, T* dk, T* dv, float* delta, const T* dout, const T* q, const T* k, const T* v, const float* lse,
                const int32_t* seg_start, const AttnShape& s, cudaStream_t stream) {
  const float scale = (float)(1.0 / std::sqrt((double)D));
  launch<attention_dq_kernel<T, D>>(dim3(grid_for(s.T, kRows), s.H, s.B), kRows * groups<D>(), 0, stream, dq, dout, q,
                                    k, v, lse, delta, seg_start, s, scale);
  CUDA_LAUNCH_CHECK("attention_backward (dq)");
  launch<attention_dkdv_kernel<T, D>>(dim3(grid_for(s.T, dkdv_rows<D>()), s.KVH, s.B), dkdv_rows<D>() * groups<D>(), 0,
                                      stream, dk, dv, dout, q, k, v, lse, delta, seg_start, s, scale);
  CUDA_LAUNCH_CHECK("attention_backward (dk, dv)");
}

}  // namespace

void segment_starts(int32_t* seg_start, const int32_t* segment_ids, int B, int T, cudaStream_t stream) {
  require(B > 0 && T > 0 && seg_start && segment_ids, "segment_starts", "bad shape B=", B, " T=", T);
  launch<segment_starts_kernel>(grid_for(B, 64), 64, 0, stream, seg_start, segment_ids, B, T);
  CUDA_LAUNCH_CHECK("segment_starts");
}

template <typename T>
void simt_attention_forward(T* out, float* lse, const T* q, const T* k, const T* v, const int32_t* seg_start,
                            const AttnShape& s, cudaStream_t stream) {
  check_shape(s, "attention_forward");
  require(out && lse && q && k && v && seg_start, "attention_forward", "null pointer");
  switch (s.D) {
    case 32: return forward_d<T, 32>(out, lse, q, k, v, seg_start, s, stream);
    case 64: return forward_d<T, 64>(out, lse, q, k, v, seg_start, s, stream);
    default: return forward_d<T, 128>(out, lse, q, k, v, seg_start, s, stream);
  }
}

template <typename T>
void simt_attention_backward(T* dq, T* dk, T* dv, float* delta, const T* dout, const T* q, const T* k, const T* v,
                             const T* out, const float* lse, const int32_t* seg_start, const AttnShape& s,
                             cudaStream_t stream) {
  check_shape(s, "attention_backward");
  require(dq && dk && dv && delta && dout && q && k && v && out && lse && seg_start, "attention_backward",
          "null pointer");
  const size_t warps = (size_t)s.B * s.T * s.H;
  launch<attention_delta_kernel<T>>(grid_for(warps * 32, 256), 256, 0, stream, delta, dout, out, s);
  CUDA_LAUNCH_CHECK("attention_backward (delta)");
  switch (s.D) {
    case 32: return backward_d<T, 32>(dq, dk, dv, delta, dout, q, k, v, lse, seg_start, s, stream);
    case 64: return backward_d<T, 64>(dq, dk, dv, delta, dout, q, k, v, lse, seg_start, s, stream);
    default: return backward_d<T, 128>(dq, dk, dv, delta, dout, q, k, v, lse, seg_start, s, stream);
  }
}

template <typename T>
void attention_forward(T* out, float* lse, const T* q, const T* k, const T* v, const int32_t* seg_start,
                       const AttnShape& s, cudaStream_t stream) {
  if constexpr (std::is_same_v<T, bf16>)
    if (flash_attention_supported(s, q, k, v, out))
      return flash_attention_forward(out, lse, q, k, v, seg_start, s, stream);
  simt_attention_forward(out, lse, q, k, v, seg_start, s, stream);
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, float* delta, const T* dout, const T* q, const T* k, const T* v,
                        const T* out, const float* lse, const int32_t* seg_start, const AttnShape& s,
                        cudaStream_t stream) {
  if constexpr (std::is_same_v<T, bf16>)
    if (flash_attention_supported(s, q, k, v, out) && aligned16(dq) && aligned16(dk) && aligned16(dv) &&
        aligned16(dout))
      return flash_attention_backward(dq, dk, dv, delta, dout, q, k, v, out, lse, seg_start, s, stream);
  simt_attention_backward(dq, dk, dv, delta, dout, q, k, v, out, lse, seg_start, s, stream);
}

#define RT_INSTANTIATE_ATTENTION(name)                                                                             \
  template void name<float>(float*, float*, const float*, const float*, const float*, const int32_t*,              \
                            const AttnShape&, cudaStream_t);                                                       \
  template void name<bf16>(bf16*, float*, const bf16*, const bf16*, const bf16*, const int32_t*, const AttnShape&, \
                           cudaStream_t);
RT_INSTANTIATE_ATTENTION(attention_forward)
RT_INSTANTIATE_ATTENTION(simt_attention_forward)
#undef RT_INSTANTIATE_ATTENTION
#define RT_INSTANTIATE_ATTENTION_BACKWARD(name)                                                                     \
  template void name<float>(float*, float*, float*, float*, const float*, const float*, const float*, const float*, \
                            const float*, const float*, const int32_t*, const AttnShape&, cudaStream_t);            \
  template void name<bf16>(bf16*, bf16*, bf16*, float*, const bf16*, const bf16*, const bf16*, const bf16*,         \
                           const bf16*, const float*, const int32_t*, const AttnShape&, cudaStream_t);
RT_INSTANTIATE_ATTENTION_BACKWARD(attention_backward)
RT_INSTANTIATE_ATTENTION_BACKWARD(simt_attention_backward)
#undef RT_INSTANTIATE_ATTENTION_BACKWARD

}  // namespace rt::cuda
