#pragma once
// The blocks of ring attention (ring_block.cuh's contract) on the tensor-core kernels of
// flash_attention_kernels.cuh, for the CUDA backend's precision bf16: q, k, v and dout rounded to bf16, each
// block's product on the wmma kernels with the ring's mask (RingBlockRows: segment ids and zigzag positions, so
// causal only on the diagonal block), fp32 accumulation. The forward writes each block's normalised partial
// output and log-sum-exp, then merges them into out and lse (fp32) by log-sum-exp; the backward gives every block
// the final lse and delta, and adds the block's dq and dk/dv shares (bf16) into the fp32 accumulators. The fp32
// precision keeps the SIMT kernels of ring_block.cu, the checking mode. Buffers grow to the largest shape seen,
// then are reused: a step allocates nothing.
#include "common.cuh"
#include "ring_block.cuh"

namespace rt::cuda {

class RingFlashBlocks {
 public:
  explicit RingFlashBlocks(cudaStream_t stream) : stream_(stream) {}
  ~RingFlashBlocks();
  RingFlashBlocks(const RingFlashBlocks&) = delete;
  RingFlashBlocks& operator=(const RingFlashBlocks&) = delete;

  // Head dims 64 and 128, when the calling thread's device lets a block opt into the kernels' shared memory.
  static bool supported(int D);

  // Once per forward, before its blocks: q rounded to bf16.
  void begin_forward(const float* q, const RingBlockShape& s);
  // out (tokens, H*D) and lse (rows*2, H, chunk) gain the block (k, v, kseg from rank s.src) by log-sum-exp
  // merging; qseg: this rank's segment ids.
  void forward(float* out, float* lse, const int32_t* qseg, const float* k, const float* v, const int32_t* kseg,
               const RingBlockShape& s);

  // Once per backward, before its blocks: q and dout rounded, delta = rowsum(dout * out) and lse in the kernels'
  // layout (rows, H, 2 * chunk).
  void begin_backward(const float* dout, const float* q, const float* out, const float* lse, const RingBlockShape& s);
  // dq (this rank's queries) and dk, dv (the block's keys and values) gain the block's share.
  void backward(float* dq, float* dk, float* dv, const int32_t* qseg, const float* k, const float* v,
                const int32_t* kseg, const RingBlockShape& s);

 private:
  // Device memory that grows to the largest size asked for, then is reused.
  template <typename E>
  struct Scratch {
    E* p = nullptr;
    size_t n = 0;
    E* get(size_t want);
    ~Scratch();
  };
  cudaStream_t stream_;
  Scratch<bf16> q_, do_, k_, v_, o_, dq_, dk_, dv_;
  Scratch<float> block_lse_, lse_, delta_;
};

}  // namespace rt::cuda
