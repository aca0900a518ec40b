#include "bf16_compute.h"

#include <algorithm>
#include "adamw.cuh"
#include "bf16_base.cuh"
#include "gemm.cuh"
#include "step_graph.h"

namespace rt::cuda {
namespace {

// Elements a row-major matrix of rows x cols with leading dimension ld spans, from its first to its last.
size_t span(int rows, int cols, int ld) { return rows <= 0 || cols <= 0 ? 0 : (size_t)(rows - 1) * ld + cols; }

}  // namespace

Bf16Compute::Scratch::~Scratch() { cudaFree(p_); }

bf16* Bf16Compute::Scratch::get(size_t n) {
  if (n > n_) {
    const StepGraphs::Pause pause;  // a new shape inside a captured step: allocated outside the graph
    CUDA_CHECK(cudaFree(p_));
    p_ = nullptr;
    CUDA_CHECK(cudaMalloc(&p_, sizeof(bf16) * n));
    n_ = n;
  }
  return p_;
}

Bf16Compute::~Bf16Compute() {
  for (Copy& c : copies_) cudaFree(c.bits);
}

void Bf16Compute::keep_copy(const Buffer<float>& master) {
  if (!master || master->size() == 0) return;
  find(nullptr, 0);  // drops the copies of masters that are gone
  for (const Copy& c : copies_)
    if (c.master.lock() == master) return;
  bf16* bits = nullptr;
  CUDA_CHECK(cudaMalloc(&bits, sizeof(bf16) * master->size()));
  to_bf16(bits, master->data(), master->size(), stream_);
  copies_.push_back({master, master->data(), master->size(), bits, false});
}

Bf16Compute::Copy* Bf16Compute::find(const float* p, size_t n) {
  for (size_t i = 0; i < copies_.size();) {
    if (!copies_[i].master.expired()) {
      i++;
      continue;
    }
    // Its master is freed: the address range may be handed out again, and must not read as weights.
    const StepGraphs::Pause pause;
    cudaFree(copies_[i].bits);
    copies_.erase(copies_.begin() + i);
  }
  if (!p) return nullptr;
  for (Copy& c : copies_)
    if (p >= c.base && p + n <= c.base + c.n) return &c;
  return nullptr;
}

void Bf16Compute::wrote(const float* p, size_t n) {
  if (!p || n == 0) return;
  for (Copy& c : copies_)
    if (p < c.base + c.n && c.base < p + n) c.stale = true;
}

bf16* Bf16Compute::copy_slot(const float* p, size_t n) {
  Copy* c = find(p, n);
  return c ? c->bits + (p - c->base) : nullptr;
}

bf16* Bf16Compute::rounded(const float* p, size_t n, Scratch& s) {
  bf16* d = s.get(n);
  if (n) to_bf16(d, p, n, stream_);
  return d;
}

Bf16Compute::Prerounded::Prerounded(Bf16Compute* compute, const float* p, size_t n, const bf16* bits)
    : compute_(bits ? compute : nullptr) {
  if (compute_) compute_->prerounded_.push_back({p, n, bits});
}

Bf16Compute::Prerounded::~Prerounded() {
  if (compute_) compute_->prerounded_.pop_back();
}

bf16* Bf16Compute::side(int slot, size_t n) { return side_[slot].get(n); }

const bf16* Bf16Compute::operand(const float* p, size_t n, Scratch& s) {
  for (const Rounded& r : prerounded_)
    if (p >= r.p && p + n <= r.p + r.n) return r.bits + (p - r.p);
  if (Copy* c = find(p, n)) {
    if (c->stale) {
      to_bf16(c->bits, c->base, c->n, stream_);
      c->stale = false;
    }
    return c->bits + (p - c->base);
  }
  return rounded(p, n, s);
}

void Bf16Compute::widen(float* dst, const bf16* src, size_t n) {
  if (n) widen_bf16(dst, reinterpret_cast<const uint16_t*>(src), n, stream_);
}

namespace {

class RoundingGemm final : public Gemm {
 public:
  explicit RoundingGemm(Bf16Compute& compute) : compute_(compute) {}
  const char* name() const override { return compute_.gemm_name(); }
  void run(const GemmArgs& g, cudaStream_t stream) override { compute_.run(g, stream); }

 private:
  Bf16Compute& compute_;
};

}  // namespace

std::unique_ptr<Gemm> Bf16Compute::rounding_gemm() { return std::make_unique<RoundingGemm>(*this); }

void Bf16Compute::run(GemmArgs g, cudaStream_t stream) {
  if (g.ab == DType::F32) {
    g.A = operand(static_cast<const float*>(g.A), g.ta ? span(g.K, g.M, g.lda) : span(g.M, g.K, g.lda), a_);
    g.B = operand(static_cast<const float*>(g.B), g.tb ? span(g.N, g.K, g.ldb) : span(g.K, g.N, g.ldb), b_);
    g.ab = DType::BF16;
  }
  gemm_->run(g, stream);
  if (g.c == DType::F32) wrote(static_cast<const float*>(g.C), span(g.M, g.N, g.ldc));  // a merge writes weights
}

void Bf16Compute::attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                    const int32_t* seg_start, const AttnShape& s) {
  const size_t N = (size_t)s.B * s.T, nq = N * s.qdim(), nkv = N * s.kvdim();
  bf16* o = o_.get(nq);
  cuda::attention_forward<bf16>(o, lse, rounded(q, nq, q_), rounded(k, nkv, k_), rounded(v, nkv, v_), seg_start, s,
                                stream_);
  widen(out, o, nq);
}

void Bf16Compute::attention_backward(float* dq, float* dk, float* dv, float* delta, const float* dout, const float* q,
                                     const float* k, const float* v, const float* out, const float* lse,
                                     const int32_t* seg_start, const AttnShape& s) {
  const size_t N = (size_t)s.B * s.T, nq = N * s.qdim(), nkv = N * s.kvdim();
  // out was widened from the forward's bf16 result, so rounding it again gives the forward's bits.
  bf16 *gq = dq_.get(nq), *gk = dk_.get(nkv), *gv = dv_.get(nkv);
  cuda::attention_backward<bf16>(gq, gk, gv, delta, rounded(dout, nq, do_), rounded(q, nq, q_), rounded(k, nkv, k_),
                                 rounded(v, nkv, v_), rounded(out, nq, o_), lse, seg_start, s, stream_);
  widen(dq, gq, nq);
  widen(dk, gk, nkv);
  widen(dv, gv, nkv);
}

}  // namespace rt::cuda
