#include "ring_flash.cuh"

#include "adamw.cuh"
#include "flash_attention.cuh"
#include "flash_attention_kernels.cuh"

namespace rt::cuda {
namespace {

// The kernels' view of a block: rows of 2 * chunk local tokens.
AttnShape kernel_shape(const RingBlockShape& s) { return {s.rows, 2 * s.chunk, s.H, s.KVH, s.D}; }

flash::RingBlockRows ring_mask(const int32_t* qseg, const int32_t* kseg, const RingBlockShape& s) {
  return {qseg, kseg, s.chunk, s.rank, s.src, s.group};
}

// The ring's stat layout (rows*2, H, chunk) and the kernels' (rows, H, 2 * chunk), of token n and head h.
__device__ __forceinline__ size_t ring_stat(size_t n, int h, const RingBlockShape& s) {
  return ((n / s.chunk) * s.H + h) * s.chunk + n % s.chunk;
}
__device__ __forceinline__ size_t kernel_stat(size_t n, int h, const RingBlockShape& s) {
  const size_t T = 2 * (size_t)s.chunk;
  return ((n / T) * s.H + h) * T + n % T;
}

constexpr int kMergeWarps = 4;

// out and lse (ring layout) merged with a block's normalised output o and its lse (kernel layout); a row the
// block did not reach (lse -inf) keeps its values. One warp per (token, head).
__global__ void merge_kernel(float* out, float* lse, const bf16* o, const float* block_lse, RingBlockShape s) {
  const size_t w = (size_t)blockIdx.x * kMergeWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (w >= (size_t)s.rows * 2 * s.chunk * s.H) return;
  const size_t n = w / s.H;
  const int h = (int)(w % s.H);
  const float blk = block_lse[kernel_stat(n, h, s)];
  if (blk == -INFINITY) return;  // the same for every lane
  const size_t li = ring_stat(n, h, s);
  const float old = lse[li], hi = fmaxf(old, blk);
  const float merged = hi + logf(expf(old - hi) + expf(blk - hi));
  const float keep = old == -INFINITY ? 0.f : expf(old - merged), add = expf(blk - merged);
  const size_t at = n * s.H * s.D + (size_t)h * s.D;
  for (int d = lane; d < s.D; d += 32) out[at + d] = out[at + d] * keep + __bfloat162float(o[at + d]) * add;
  __syncwarp();  // every lane has read the old lse before lane 0 replaces it
  if (lane == 0) lse[li] = merged;
}

// delta = rowsum(dout * out) (fp32) and lse moved to the kernels' layout. One warp per (token, head).
__global__ void stats_kernel(float* delta, float* lse_out, const float* dout, const float* out, const float* lse,
                             RingBlockShape s) {
  const size_t w = (size_t)blockIdx.x * kMergeWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (w >= (size_t)s.rows * 2 * s.chunk * s.H) return;
  const size_t n = w / s.H;
  const int h = (int)(w % s.H);
  const size_t at = n * s.H * s.D + (size_t)h * s.D;
  float acc = 0.f;
  for (int d = lane; d < s.D; d += 32) acc += dout[at + d] * out[at + d];
  acc = warp_sum(acc);
  if (lane == 0) {
    delta[kernel_stat(n, h, s)] = acc;
    lse_out[kernel_stat(n, h, s)] = lse[ring_stat(n, h, s)];
  }
}

// dst += src (widened), elementwise.
__global__ void add_widened_kernel(float* dst, const bf16* src, size_t n) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dst[i] += __bfloat162float(src[i]);
}

void add_widened(float* dst, const bf16* src, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  launch<add_widened_kernel>(grid_for(n, 256), 256, 0, stream, dst, src, n);
  CUDA_LAUNCH_CHECK("ring attention (add a block's gradient)");
}

unsigned merge_blocks(const RingBlockShape& s) { return grid_for((size_t)s.rows * 2 * s.chunk * s.H, kMergeWarps); }

void check(const RingBlockShape& s, const char* op) {
  require(s.rows > 0 && s.chunk > 0 && s.H > 0 && s.KVH > 0 && s.H % s.KVH == 0, op, "bad shape: rows ", s.rows,
          ", chunk ", s.chunk, ", ", s.H, " heads over ", s.KVH, " key/value heads");
  require(s.D == 64 || s.D == 128, op, "head size ", s.D, " is not 64 or 128");
  require(s.rank >= 0 && s.src >= 0 && s.rank < s.group && s.src < s.group, op, "rank ", s.rank, " or source ", s.src,
          " outside a group of ", s.group);
}

}  // namespace

template <typename E>
E* RingFlashBlocks::Scratch<E>::get(size_t want) {
  if (want > n) {
    CUDA_CHECK(cudaFree(p));
    p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, sizeof(E) * want));
    n = want;
  }
  return p;
}
template <typename E>
RingFlashBlocks::Scratch<E>::~Scratch() {
  if (p) cudaFree(p);
}

RingFlashBlocks::~RingFlashBlocks() = default;

bool RingFlashBlocks::supported(int D) {
  if (D != 64 && D != 128) return false;
  // flash_attention_supported checks the head dim, the alignment (the scratch here is cudaMalloc'ed) and the
  // shared memory the device offers; a one-token shape asks only about the latter two.
  const AttnShape probe{1, 1, 1, 1, D};
  alignas(16) static const char aligned[16] = {};
  return flash_attention_supported(probe, aligned, aligned, aligned, aligned);
}

void RingFlashBlocks::begin_forward(const float* q, const RingBlockShape& s) {
  check(s, "ring attention forward (tensor cores)");
  const size_t nq = (size_t)s.rows * 2 * s.chunk * s.H * s.D;
  to_bf16(q_.get(nq), q, nq, stream_);
}

void RingFlashBlocks::forward(float* out, float* lse, const int32_t* qseg, const float* k, const float* v,
                              const int32_t* kseg, const RingBlockShape& s) {
  check(s, "ring attention forward (tensor cores)");
  const AttnShape ks = kernel_shape(s);
  const size_t tokens = (size_t)s.rows * 2 * s.chunk, nq = tokens * s.H * s.D, nkv = tokens * s.KVH * s.D;
  bf16 *k16 = k_.get(nkv), *v16 = v_.get(nkv), *o = o_.get(nq);
  float* blse = block_lse_.get(tokens * s.H);
  to_bf16(k16, k, nkv, stream_);
  to_bf16(v16, v, nkv, stream_);
  const flash::RingBlockRows mask = ring_mask(qseg, kseg, s);
  if (s.D == 64) flash::launch_forward_masked<64>(o, blse, q_.p, k16, v16, mask, ks, stream_);
  else flash::launch_forward_masked<128>(o, blse, q_.p, k16, v16, mask, ks, stream_);
  launch<merge_kernel>(merge_blocks(s), kMergeWarps * 32, 0, stream_, out, lse, o, blse, s);
  CUDA_LAUNCH_CHECK("ring attention forward (merge)");
}

void RingFlashBlocks::begin_backward(const float* dout, const float* q, const float* out, const float* lse,
                                     const RingBlockShape& s) {
  check(s, "ring attention backward (tensor cores)");
  const size_t tokens = (size_t)s.rows * 2 * s.chunk, nq = tokens * s.H * s.D;
  to_bf16(q_.get(nq), q, nq, stream_);
  to_bf16(do_.get(nq), dout, nq, stream_);
  launch<stats_kernel>(merge_blocks(s), kMergeWarps * 32, 0, stream_, delta_.get(tokens * s.H), lse_.get(tokens * s.H),
                       dout, out, lse, s);
  CUDA_LAUNCH_CHECK("ring attention backward (delta)");
}

void RingFlashBlocks::backward(float* dq, float* dk, float* dv, const int32_t* qseg, const float* k, const float* v,
                               const int32_t* kseg, const RingBlockShape& s) {
  check(s, "ring attention backward (tensor cores)");
  const AttnShape ks = kernel_shape(s);
  const size_t tokens = (size_t)s.rows * 2 * s.chunk, nq = tokens * s.H * s.D, nkv = tokens * s.KVH * s.D;
  bf16 *k16 = k_.get(nkv), *v16 = v_.get(nkv), *gq = dq_.get(nq), *gk = dk_.get(nkv), *gv = dv_.get(nkv);
  to_bf16(k16, k, nkv, stream_);
  to_bf16(v16, v, nkv, stream_);
  const flash::RingBlockRows mask = ring_mask(qseg, kseg, s);
  if (s.D == 64) flash::launch_gradients<64>(gq, gk, gv, delta_.p, do_.p, q_.p, k16, v16, lse_.p, mask, ks, stream_);
  else flash::launch_gradients<128>(gq, gk, gv, delta_.p, do_.p, q_.p, k16, v16, lse_.p, mask, ks, stream_);
  add_widened(dq, gq, nq, stream_);
  add_widened(dk, gk, nkv, stream_);
  add_widened(dv, gv, nkv, stream_);
}

}  // namespace rt::cuda
