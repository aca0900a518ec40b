#include <cmath>
#include "ring_block.cuh"

namespace rt::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;

// Where token n (of rows * 2 * chunk) of `rank`'s block sits in its full row.
__device__ __forceinline__ int zigzag_position(int n, int rank, const RingBlockShape& s) {
  const int in_row = n % (2 * s.chunk), w = in_row / s.chunk, t = in_row % s.chunk;
  return (w == 0 ? rank : 2 * s.group - 1 - rank) * s.chunk + t;
}
// lse / delta index of token n, head h: (rows*2, H, chunk).
__device__ __forceinline__ size_t stat_index(int n, int h, const RingBlockShape& s) {
  return ((size_t)(n / s.chunk) * s.H + h) * s.chunk + n % s.chunk;
}

template <typename T, int DT>
__global__ void ring_block_forward_kernel(T* out, float* lse, const T* q, const int32_t* qseg, const T* k, const T* v,
                                          const int32_t* kseg, RingBlockShape s, float scale) {
  const int warp = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  const int tokens = s.rows * 2 * s.chunk;
  if (warp >= tokens * s.H) return;
  const int n = warp / s.H, h = warp % s.H, kvh = h / (s.H / s.KVH);
  const int QD = s.H * s.D, KD = s.KVH * s.D, row0 = n / (2 * s.chunk) * (2 * s.chunk);
  const int qpos = zigzag_position(n, s.rank, s), seg = qseg[n];
  const size_t li = stat_index(n, h, s);
  const float old = lse[li];
  float qr[DT], o[DT];
  for (int e = 0; e < DT; e++) {
    qr[e] = to_f(q[(size_t)n * QD + h * s.D + lane + 32 * e]) * scale;
    o[e] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int j = row0; j < row0 + 2 * s.chunk; j++) {
    if (kseg[j] != seg || zigzag_position(j, s.src, s) > qpos) continue;  // the same for every lane
    const size_t kat = (size_t)j * KD + kvh * s.D + lane;
    float sc = 0.f;
    for (int e = 0; e < DT; e++) sc += qr[e] * to_f(k[kat + 32 * e]);
    sc = warp_sum(sc);
    if (sc > m) {
      const float c = expf(m - sc);
      l *= c;
      for (int e = 0; e < DT; e++) o[e] *= c;
      m = sc;
    }
    const float p = expf(sc - m);
    l += p;
    for (int e = 0; e < DT; e++) o[e] += p * to_f(v[kat + 32 * e]);
  }
  __syncwarp();          // every lane has read the old lse before lane 0 replaces it
  if (l == 0.f) return;  // no key of this block is visible
  const float blk = m + logf(l), hi = fmaxf(old, blk);
  const float merged = hi + logf(expf(old - hi) + expf(blk - hi));
  const float keep = old == -INFINITY ? 0.f : expf(old - merged), add = expf(m - merged);
  for (int e = 0; e < DT; e++) {
    T* at = out + (size_t)n * QD + h * s.D + lane + 32 * e;
    *at = from_f<T>(to_f(*at) * keep + o[e] * add);
  }
  if (lane == 0) lse[li] = merged;
}

template <typename T>
__global__ void ring_block_delta_kernel(float* delta, const T* dout, const T* out, RingBlockShape s) {
  const int warp = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (warp >= s.rows * 2 * s.chunk * s.H) return;
  const int n = warp / s.H, h = warp % s.H;
  const size_t off = (size_t)n * s.H * s.D + (size_t)h * s.D;
  float acc = 0.f;
  for (int d = lane; d < s.D; d += 32) acc += to_f(dout[off + d]) * to_f(out[off + d]);
  acc = warp_sum(acc);
  if (lane == 0) delta[stat_index(n, h, s)] = acc;
}

// dq_i += scale * sum_j P_ij (dP_ij - delta_i) k_j over the block's visible keys.
template <typename T, int DT>
__global__ void ring_block_dq_kernel(T* dq, const T* dout, const T* q, const int32_t* qseg, const float* lse,
                                     const float* delta, const T* k, const T* v, const int32_t* kseg, RingBlockShape s,
                                     float scale) {
  const int warp = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (warp >= s.rows * 2 * s.chunk * s.H) return;
  const int n = warp / s.H, h = warp % s.H, kvh = h / (s.H / s.KVH);
  const int QD = s.H * s.D, KD = s.KVH * s.D, row0 = n / (2 * s.chunk) * (2 * s.chunk);
  const int qpos = zigzag_position(n, s.rank, s), seg = qseg[n];
  const size_t li = stat_index(n, h, s);
  const float L = lse[li], Di = delta[li];
  float qr[DT], dor[DT], acc[DT];
  for (int e = 0; e < DT; e++) {
    const size_t at = (size_t)n * QD + h * s.D + lane + 32 * e;
    qr[e] = to_f(q[at]) * scale;
    dor[e] = to_f(dout[at]);
    acc[e] = 0.f;
  }
  for (int j = row0; j < row0 + 2 * s.chunk; j++) {
    if (kseg[j] != seg || zigzag_position(j, s.src, s) > qpos) continue;
    const size_t kat = (size_t)j * KD + kvh * s.D + lane;
    float sc = 0.f, dp = 0.f;
    for (int e = 0; e < DT; e++) {
      sc += qr[e] * to_f(k[kat + 32 * e]);
      dp += dor[e] * to_f(v[kat + 32 * e]);
    }
    sc = warp_sum(sc);
    dp = warp_sum(dp);
    const float ds = expf(sc - L) * (dp - Di);
    for (int e = 0; e < DT; e++) acc[e] += ds * to_f(k[kat + 32 * e]);
  }
  for (int e = 0; e < DT; e++) {
    T* at = dq + (size_t)n * QD + h * s.D + lane + 32 * e;
    *at = from_f<T>(to_f(*at) + scale * acc[e]);
  }
}

// dv_j += sum_i P_ij dout_i and dk_j += scale * sum_i P_ij (dP_ij - delta_i) q_i over the queries (every head of
// j's group) that see key j: one warp per (key, key/value head), so no two warps write the same row.
template <typename T, int DT>
__global__ void ring_block_dkdv_kernel(T* dk, T* dv, const T* dout, const T* q, const int32_t* qseg, const float* lse,
                                       const float* delta, const T* k, const T* v, const int32_t* kseg,
                                       RingBlockShape s, float scale) {
  const int warp = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (warp >= s.rows * 2 * s.chunk * s.KVH) return;
  const int j = warp / s.KVH, kvh = warp % s.KVH, group = s.H / s.KVH;
  const int QD = s.H * s.D, KD = s.KVH * s.D, row0 = j / (2 * s.chunk) * (2 * s.chunk);
  const int kpos = zigzag_position(j, s.src, s), seg = kseg[j];
  const size_t kat = (size_t)j * KD + kvh * s.D + lane;
  float kr[DT], vr[DT], dka[DT], dva[DT];
  for (int e = 0; e < DT; e++) {
    kr[e] = to_f(k[kat + 32 * e]);
    vr[e] = to_f(v[kat + 32 * e]);
    dka[e] = dva[e] = 0.f;
  }
  for (int i = row0; i < row0 + 2 * s.chunk; i++) {
    if (qseg[i] != seg || kpos > zigzag_position(i, s.rank, s)) continue;
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
      const size_t qat = (size_t)i * QD + h * s.D + lane, li = stat_index(i, h, s);
      float sc = 0.f, dp = 0.f;
      for (int e = 0; e < DT; e++) {
        sc += to_f(q[qat + 32 * e]) * kr[e];
        dp += to_f(dout[qat + 32 * e]) * vr[e];
      }
      sc = warp_sum(sc) * scale;
      dp = warp_sum(dp);
      const float p = expf(sc - lse[li]), ds = p * (dp - delta[li]);
      for (int e = 0; e < DT; e++) {
        dva[e] += p * to_f(dout[qat + 32 * e]);
        dka[e] += scale * ds * to_f(q[qat + 32 * e]);
      }
    }
  }
  for (int e = 0; e < DT; e++) {
    dk[kat + 32 * e] = from_f<T>(to_f(dk[kat + 32 * e]) + dka[e]);
    dv[kat + 32 * e] = from_f<T>(to_f(dv[kat + 32 * e]) + dva[e]);
  }
}

void check_shape(const RingBlockShape& s, const char* op) {
  if (s.rows < 0 || s.chunk <= 0 || s.H <= 0 || s.KVH <= 0 || s.H % s.KVH != 0)
    fail(op, "bad shape: rows ", s.rows, ", chunk ", s.chunk, ", ", s.H, " heads over ", s.KVH, " key/value heads");
  if (s.D % 32 != 0 || s.D > 128) fail(op, "head size ", s.D, " is not a multiple of 32 up to 128");
  if (s.rank < 0 || s.src < 0 || s.rank >= s.group || s.src >= s.group)
    fail(op, "rank ", s.rank, " or source ", s.src, " outside a group of ", s.group);
}

unsigned blocks_for(size_t warps) { return (unsigned)((warps + kWarpsPerBlock - 1) / kWarpsPerBlock); }

}  // namespace

// One instantiation per dimensions-per-lane (D / 32).
#define RT_BY_DT(D, CALL)    \
  switch ((D) / 32) {        \
    case 1: CALL(1); break;  \
    case 2: CALL(2); break;  \
    case 3: CALL(3); break;  \
    default: CALL(4); break; \
  }

template <typename T>
void ring_block_forward(T* out, float* lse, const T* q, const int32_t* qseg, const T* k, const T* v,
                        const int32_t* kseg, const RingBlockShape& s, cudaStream_t stream) {
  check_shape(s, "ring_block_forward");
  const size_t warps = (size_t)s.rows * 2 * s.chunk * s.H;
  if (warps == 0) return;
  const float scale = 1.f / std::sqrt((float)s.D);
#define RT_LAUNCH(DT)                                                                                                  \
  launch<ring_block_forward_kernel<T, DT>>(blocks_for(warps), kWarpsPerBlock * 32, 0, stream, out, lse, q, qseg, k, v, \
                                           kseg, s, scale)
  RT_BY_DT(s.D, RT_LAUNCH)
#undef RT_LAUNCH
  CUDA_LAUNCH_CHECK("ring_block_forward");
}

template <typename T>
void ring_block_delta(float* delta, const T* dout, const T* out, const RingBlockShape& s, cudaStream_t stream) {
  check_shape(s, "ring_block_delta");
  const size_t warps = (size_t)s.rows * 2 * s.chunk * s.H;
  if (warps == 0) return;
  launch<ring_block_delta_kernel<T>>(blocks_for(warps), kWarpsPerBlock * 32, 0, stream, delta, dout, out, s);
  CUDA_LAUNCH_CHECK("ring_block_delta");
}

template <typename T>
void ring_block_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const int32_t* qseg, const float* lse,
                         const float* delta, const T* k, const T* v, const int32_t* kseg, const RingBlockShape& s,
                         cudaStream_t stream) {
  check_shape(s, "ring_block_backward");
  const size_t tokens = (size_t)s.rows * 2 * s.chunk;
  if (tokens == 0) return;
  const float scale = 1.f / std::sqrt((float)s.D);
#define RT_LAUNCH(DT)                                                                                                \
  launch<ring_block_dq_kernel<T, DT>>(blocks_for(tokens * s.H), kWarpsPerBlock * 32, 0, stream, dq, dout, q, qseg,   \
                                      lse, delta, k, v, kseg, s, scale);                                             \
  launch<ring_block_dkdv_kernel<T, DT>>(blocks_for(tokens * s.KVH), kWarpsPerBlock * 32, 0, stream, dk, dv, dout, q, \
                                        qseg, lse, delta, k, v, kseg, s, scale)
  RT_BY_DT(s.D, RT_LAUNCH)
#undef RT_LAUNCH
  CUDA_LAUNCH_CHECK("ring_block_backward");
}

#define RT_INSTANTIATE(T)                                                                                          \
  template void ring_block_forward<T>(T*, float*, const T*, const int32_t*, const T*, const T*, const int32_t*,    \
                                      const RingBlockShape&, cudaStream_t);                                        \
  template void ring_block_delta<T>(float*, const T*, const T*, const RingBlockShape&, cudaStream_t);              \
  template void ring_block_backward<T>(T*, T*, T*, const T*, const T*, const int32_t*, const float*, const float*, \
                                       const T*, const T*, const int32_t*, const RingBlockShape&, cudaStream_t);
RT_INSTANTIATE(float)
RT_INSTANTIATE(bf16)
#undef RT_INSTANTIATE

}  // namespace rt::cuda
