#include "mlp_fused.h"

#include "adamw.cuh"
#include "bf16_compute.h"
#include "bias.cuh"
#include "gemm.cuh"
#include "linear_fused.cuh"
#include "rmsnorm.cuh"
#include "swiglu.cuh"
#include "swiglu_fused.cuh"

namespace rt::cuda {

// The scratch slots of Bf16Compute::side the ops below write their bf16 operands into.
enum SideSlot { kLn16 = 0, kH16 = 1, kGrad16 = 2 };

void rmsnorm_linear_stacked(const FusedOps& f, float* const* outs, float* ln, float* rstd, const float* inp,
                            const float* norm_w, double eps, const float* w, const float* bias, const int* O, int parts,
                            int N, int C, float* packed) {
  const size_t NC = (size_t)N * C;
  bf16* ln16 = f.bf16 ? f.bf16->side(kLn16, NC) : nullptr;
  rmsnorm_forward(ln, rstd, inp, norm_w, N, C, eps, f.stream, ln16);
  const Bf16Compute::Prerounded lns(f.bf16, ln, NC, ln16);
  linear_forward_stacked<float>(f.gemm, outs, ln, w, bias, O, parts, N, C, packed, f.stream);
}

void mlp_forward(const FusedOps& f, const MlpForward<float>& m, float* packed) {
  const int N = m.N, C = m.C, F = m.F;
  const size_t NC = (size_t)N * C, NF = (size_t)N * F;
  bf16* ln16 = f.bf16 ? f.bf16->side(kLn16, NC) : nullptr;
  rmsnorm_forward(m.ln, m.rstd, m.residual, m.norm_w, N, C, m.eps, f.stream, ln16);
  {
    const Bf16Compute::Prerounded ln(f.bf16, m.ln, NC, ln16);
    linear_forward_epilogue<float>(f.gemm, packed, m.ln, m.w_gu, m.b_gu, nullptr, N, C, 2 * F, f.stream);
  }
  bf16* h16 = f.bf16 ? f.bf16->side(kH16, NF) : nullptr;
  split_swiglu_forward(m.gate, m.up, m.h, h16, packed, N, F, f.stream);
  const Bf16Compute::Prerounded h(f.bf16, m.h, NF, h16);
  linear_forward_epilogue<float>(f.gemm, m.out, m.h, m.w_down, m.b_down, m.residual, N, F, C, f.stream);
}

void swiglu_down_backward(const FusedOps& f, float* dh, float* dw_down, float* db_down, float* h, const float* dout,
                          const float* gate, const float* up, const float* w_down, int N, int C, int F) {
  const size_t NC = (size_t)N * C, NF = (size_t)N * F;
  bf16* h16 = f.bf16 && dw_down ? f.bf16->side(kH16, NF) : nullptr;
  swiglu_forward(h, gate, up, NF, f.stream, h16);
  const Bf16Compute::Prerounded hs(f.bf16, h, NF, h16);
  // dout is an operand of both GEMMs: rounded once when both run
  bf16* d16 = f.bf16 && dh && dw_down ? f.bf16->side(kGrad16, NC) : nullptr;
  if (d16) to_bf16(d16, dout, NC, f.stream);
  const Bf16Compute::Prerounded ds(f.bf16, dout, NC, d16);
  if (dh) gemm(f.gemm, false, false, N, F, C, 1.f, dout, C, w_down, F, 0.f, dh, F, f.stream);
  if (dw_down) gemm(f.gemm, true, false, C, F, N, 1.f, dout, C, (const float*)h, F, 1.f, dw_down, F, f.stream);
  if (db_down) bias_grad(db_down, dout, N, C, f.stream);
}

void swiglu_stacked_backward(const FusedOps& f, float* dinp, float* dw_gu, float* db_gu, const float* dh,
                             const float* gate, const float* up, const float* inp, const float* w_gu, int N, int C,
                             int F, float* packed) {
  const size_t total = (size_t)N * 2 * F;
  bf16* p16 = f.bf16 ? f.bf16->side(kGrad16, total) : nullptr;
  // In bf16 the GEMMs read the rounded gradient alone; the fp32 one is written only for the bias gradient.
  float* p32 = !p16 || db_gu ? packed : nullptr;
  swiglu_backward_stacked(p32, p16, dh, gate, up, N, F, f.stream);
  const Bf16Compute::Prerounded ps(f.bf16, packed, total, p16);
  if (dinp) gemm(f.gemm, false, false, N, C, 2 * F, 1.f, (const float*)packed, 2 * F, w_gu, C, 0.f, dinp, C, f.stream);
  if (dw_gu) gemm(f.gemm, true, false, 2 * F, C, N, 1.f, (const float*)packed, 2 * F, inp, C, 1.f, dw_gu, C, f.stream);
  if (db_gu) bias_grad(db_gu, (const float*)packed, N, 2 * F, f.stream);
}

}  // namespace rt::cuda
