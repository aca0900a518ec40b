#pragma once
// The blocks of ring attention (sequence parallelism) on the device: this rank's queries against one key/value
// block that may come from another rank of the group (src), in the zigzag layout of ring_attention.h. A block
// holds rows * 2 chunks of `chunk` tokens; chunk w of row b of rank r starts at position zigzag_start(r, w) of
// the full row. Query i sees key j iff both carry the same segment id and j's position is at most i's: the
// causal mask inside a chunk, every key of a wholly earlier chunk, none of a later one (the CPU's
// connect_chunks, by positions instead of chunk pairs). One warp per (token, head), D / 32 dimensions per lane,
// fp32 math: the SIMT scheme of attention.cu without its tile skipping (a block is one chunk pair wide).
#include "common.cuh"

namespace rt::cuda {

struct RingBlockShape {
  int rows, chunk;       // local tokens: rows * 2 * chunk
  int H, KVH, D;         // D a multiple of 32, at most 128
  int rank, src, group;  // the queries' rank, the keys' rank, the group's size
};

// out (tokens, H*D) and lse (rows*2, H, chunk) gain the block's share by log-sum-exp merging; lse starts at
// -inf and out at 0.
// The head sizes the kernels are built for (the model falls back to the host's ring attention otherwise).
inline bool ring_block_supported(int D) { return D > 0 && D % 32 == 0 && D <= 128; }

template <typename T>
void ring_block_forward(T* out, float* lse, const T* q, const int32_t* qseg, const T* k, const T* v,
                        const int32_t* kseg, const RingBlockShape& s, cudaStream_t stream);

// delta (rows*2, H, chunk) = rowsum(dout * out), once per backward.
template <typename T>
void ring_block_delta(float* delta, const T* dout, const T* out, const RingBlockShape& s, cudaStream_t stream);

// dq (this rank's queries) and dk, dv (the block's keys and values) gain the block's share.
template <typename T>
void ring_block_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const int32_t* qseg, const float* lse,
                         const float* delta, const T* k, const T* v, const int32_t* kseg, const RingBlockShape& s,
                         cudaStream_t stream);

}  // namespace rt::cuda
