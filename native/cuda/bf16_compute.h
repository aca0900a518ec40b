#pragma once
// bf16 compute over fp32 storage, the CUDA backend's precision bf16, in the manner of torch.autocast(bf16):
// master weights, gradients, AdamW moments and the activations the model keeps stay fp32 in its buffers; GEMMs
// take bf16 operands with fp32 accumulation and an fp32 result (cuBLASLt with bf16 A/B and fp32 C on a GPU, the
// own wmma kernel under the emulator); attention runs on bf16 q, k, v (the tensor-core kernels at head dims 64
// and 128, the SIMT kernels otherwise) with an fp32 lse; norms, RoPE, SwiGLU, softmax and cross entropy stay
// fp32 (the backend's fp32 ops). Weights are read from a bf16 compute copy of each buffer the model names
// (keep_copy) that AdamW refreshes in the same kernel that updates the master; any other operand is rounded into
// scratch that grows to the largest size asked for and is then reused, so a step allocates nothing once its
// shapes have been seen.
#include <cstddef>
#include <memory>
#include <vector>
#include "attention.cuh"
#include "buffer.h"
#include "gemm.cuh"

namespace rt::cuda {

class Bf16Compute {
 public:
  // gemm: the GEMM that runs the products (cuBLASLt or the own kernels).
  Bf16Compute(std::unique_ptr<Gemm> gemm, cudaStream_t stream) : gemm_(std::move(gemm)), stream_(stream) {}
  ~Bf16Compute();
  Bf16Compute(const Bf16Compute&) = delete;
  Bf16Compute& operator=(const Bf16Compute&) = delete;

  // Keeps a bf16 copy of `master` (a buffer of fp32 weights) for as long as it lives; the same buffer twice is
  // kept once.
  void keep_copy(const Buffer<float>& master);
  // Something other than AdamW wrote [p, p + n): a copy covering it is refreshed before its next read.
  void wrote(const float* p, size_t n);
  // Where AdamW writes the bf16 copy of the weights [p, p + n) it updates: null when no copy covers them.
  bf16* copy_slot(const float* p, size_t n);

  // A GEMM (kept by this object, which must outlive it) for every product of the backend, epilogues included:
  // fp32 A and B are handed to the GEMM in bf16 (rounded, or read from a weight copy), C stays fp32.
  std::unique_ptr<Gemm> rounding_gemm();
  void run(GemmArgs g, cudaStream_t stream);
  const char* gemm_name() const { return gemm_->name(); }
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                         const int32_t* seg_start, const AttnShape& s);
  void attention_backward(float* dq, float* dk, float* dv, float* delta, const float* dout, const float* q,
                          const float* k, const float* v, const float* out, const float* lse, const int32_t* seg_start,
                          const AttnShape& s);

  // Activations a fused kernel wrote in bf16 beside their fp32 values (an rmsnorm output, SwiGLU's h, the
  // stacked gradient of gate/up): while a Prerounded lives, a GEMM operand inside [p, p + n) is read from those
  // bits rather than rounded again by a kernel of its own. Scoped to one fused op of the backend, whose GEMMs
  // read the activation before anything else may write it.
  class Prerounded {
   public:
    Prerounded(Bf16Compute* compute, const float* p, size_t n, const bf16* bits);  // compute or bits null: none
    ~Prerounded();
    Prerounded(const Prerounded&) = delete;
    Prerounded& operator=(const Prerounded&) = delete;

   private:
    Bf16Compute* compute_;
  };
  // Where a fused kernel writes such bf16 values: scratch `slot` (0 to kSideSlots - 1) of at least n elements.
  static constexpr int kSideSlots = 3;
  bf16* side(int slot, size_t n);

  // Grows to the largest size asked for, then is reused.
  class Scratch {
   public:
    ~Scratch();
    bf16* get(size_t n);

   private:
    bf16* p_ = nullptr;
    size_t n_ = 0;
  };

 private:
  struct Copy {
    std::weak_ptr<Storage<float>> master;
    const float* base;
    size_t n;
    bf16* bits;
    bool stale;
  };
  // The copy holding [p, p + n) of a live master, or null; drops the copies of masters that are gone.
  Copy* find(const float* p, size_t n);
  // p's elements [0, n) in bf16: from a weight copy (refreshed first when stale), else rounded into s.
  const bf16* operand(const float* p, size_t n, Scratch& s);
  bf16* rounded(const float* p, size_t n, Scratch& s);
  void widen(float* dst, const bf16* src, size_t n);

  std::unique_ptr<Gemm> gemm_;
  cudaStream_t stream_;
  std::vector<Copy> copies_;
  struct Rounded {
    const float* p;
    size_t n;
    const bf16* bits;
  };
  std::vector<Rounded> prerounded_;  // the live Prerounded scopes' operands
  Scratch side_[kSideSlots];
  Scratch a_, b_, q_, k_, v_, o_, do_, dq_, dk_, dv_;
};

}  // namespace rt::cuda
