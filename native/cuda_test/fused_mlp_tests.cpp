// SwiGLU fused with its neighbours (mlp_fused.h) through the backend seam: the MLP half of a layer forward, down_proj's
// backward with SwiGLU recomputed, and SwiGLU's backward joined with the stacked gate/up backward. Each against
//  - the CPU backend's separate ops (fp32: 1e-5 relative per element),
//  - the same device backend's separate ops (Backend's default implementations over its own ops): the same bits in
//    fp32 and in bf16, with fewer kernel launches (counted under the emulator),
//  - in bf16, the CPU's fp32 within a relative L2 tolerance (about 3x the measured error) and above 1e-6, so a
//    path that silently stays in fp32 fails.
// Widths with whole 128-bit packs (F = 24) and without (F = 13: one element at a time), with and without biases.
// The kernels alone: the bf16 copies they write equal the rounding of their fp32 outputs, which match the CPU's.
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>
#include "backend.h"
#include "cuda_backend.h"
#include "device_buffer.h"
#include "gemm.cuh"
#include "swiglu_fused.cuh"
#include "test_util.h"

#ifdef RINGTUNE_CUDA_EMU
#include <cuda_runtime.h>  // the emulator's: ringtune_emu_kernel_launches()
#endif

using namespace rt;
using rt::cuda::Precision;
using rt::cuda::test::DeviceBuffer;
using rt::test::expect_close;
using rt::test::fill_uniform;
using rt::test::note;

namespace {

struct MlpCase {
  int N, C, F;
  bool bias;
};

struct MlpInputs {
  std::vector<float> residual, norm_w, w_gu, b_gu, w_down, b_down, dout, dw_gu, db_gu, dw_down, db_down;
  explicit MlpInputs(const MlpCase& s)
      : residual((size_t)s.N * s.C),
        norm_w(s.C),
        w_gu((size_t)2 * s.F * s.C),
        b_gu(2 * s.F),
        w_down((size_t)s.C * s.F),
        b_down(s.C),
        dout((size_t)s.N * s.C),
        dw_gu(w_gu.size()),
        db_gu(b_gu.size()),
        dw_down(w_down.size()),
        db_down(b_down.size()) {
    fill_uniform(residual, 31, 2.0), fill_uniform(norm_w, 32, 1.0), fill_uniform(w_gu, 33, 0.3);
    fill_uniform(b_gu, 34, 0.5), fill_uniform(w_down, 35, 0.3), fill_uniform(b_down, 36, 0.5);
    fill_uniform(dout, 37), fill_uniform(dw_gu, 38), fill_uniform(db_gu, 39), fill_uniform(dw_down, 40);
    fill_uniform(db_down, 41);
  }
};

using Named = std::vector<std::pair<std::string, std::vector<float>>>;

// The three ops on `ops` (fused: the backend's own; else Backend's defaults, the separate calls), every output
// read back. kernel_launches (when not null) receives the launches the three calls made (under the emulator).
Named run_mlp(const Backend<float>& ops, bool fused, const MlpCase& s, const MlpInputs& in,
              unsigned long long* kernel_launches = nullptr) {
  const int N = s.N, C = s.C, F = s.F;
  const size_t NC = (size_t)N * C, NF = (size_t)N * F;
  auto put = [&](const std::vector<float>& v) {
    Buffer<float> b = ops.zeros(v.size());
    ops.upload(b->data(), v.data(), v.size());
    return b;
  };
  Buffer<float> residual = put(in.residual), norm_w = put(in.norm_w), w_gu = put(in.w_gu), b_gu = put(in.b_gu),
                w_down = put(in.w_down), b_down = put(in.b_down), dout = put(in.dout), dw_gu = put(in.dw_gu),
                db_gu = put(in.db_gu), dw_down = put(in.dw_down), db_down = put(in.db_down);
  Buffer<float> out = ops.zeros(NC), ln = ops.zeros(NC), rstd = ops.zeros(N), gate = ops.zeros(NF), up = ops.zeros(NF),
                h = ops.zeros(NF), scratch = ops.zeros(NC), dh = ops.zeros(NF), h2 = ops.zeros(NF),
                dgate = ops.zeros(NF), dup = ops.zeros(NF), dinp = ops.zeros(NC);
  const MlpForward<float> m{out->data(),
                            ln->data(),
                            rstd->data(),
                            gate->data(),
                            up->data(),
                            h->data(),
                            residual->data(),
                            norm_w->data(),
                            w_gu->data(),
                            s.bias ? b_gu->data() : nullptr,
                            w_down->data(),
                            s.bias ? b_down->data() : nullptr,
                            1e-5,
                            N,
                            C,
                            F,
                            scratch->data()};
#ifdef RINGTUNE_CUDA_EMU
  const unsigned long long before = ringtune_emu_kernel_launches();
#endif
  float* db_d = s.bias ? db_down->data() : nullptr;
  float* db_g = s.bias ? db_gu->data() : nullptr;
  if (fused) {
    ops.mlp_forward(m);
    ops.swiglu_down_backward(dh->data(), dw_down->data(), db_d, h2->data(), dout->data(), gate->data(), up->data(),
                             w_down->data(), N, C, F);
    ops.swiglu_stacked_backward(dinp->data(), dw_gu->data(), db_g, dgate->data(), dup->data(), dh->data(), gate->data(),
                                up->data(), ln->data(), w_gu->data(), N, C, F, scratch->data());
  } else {
    ops.Backend<float>::mlp_forward(m);
    ops.Backend<float>::swiglu_down_backward(dh->data(), dw_down->data(), db_d, h2->data(), dout->data(), gate->data(),
                                             up->data(), w_down->data(), N, C, F);
    ops.Backend<float>::swiglu_stacked_backward(dinp->data(), dw_gu->data(), db_g, dgate->data(), dup->data(),
                                                dh->data(), gate->data(), up->data(), ln->data(), w_gu->data(), N, C, F,
                                                scratch->data());
  }
#ifdef RINGTUNE_CUDA_EMU
  if (kernel_launches) *kernel_launches = ringtune_emu_kernel_launches() - before;
#else
  if (kernel_launches) *kernel_launches = 0;
#endif
  auto get = [&](const Buffer<float>& b) {
    std::vector<float> v(b->size());
    ops.download(v.data(), b->data(), v.size());
    return v;
  };
  Named r{{"out", get(out)},   {"ln", get(ln)},       {"rstd", get(rstd)},      {"gate", get(gate)},
          {"up", get(up)},     {"h", get(h)},         {"dh", get(dh)},          {"h recomputed", get(h2)},
          {"dinp", get(dinp)}, {"dw_gu", get(dw_gu)}, {"dw_down", get(dw_down)}};
  if (s.bias) r.push_back({"db_gu", get(db_gu)}), r.push_back({"db_down", get(db_down)});
  return r;
}

std::string label(const MlpCase& s) {
  return "N=" + std::to_string(s.N) + " C=" + std::to_string(s.C) + " F=" + std::to_string(s.F) +
         (s.bias ? " bias" : "");
}

double relative_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double d = 0, w = 0;
  for (size_t i = 0; i < want.size(); i++) {
    d += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
    w += (double)want[i] * want[i];
  }
  return std::sqrt(d) / std::max(std::sqrt(w), 1e-30);
}

const MlpCase kCases[] = {{19, 40, 24, false}, {19, 40, 13, true}, {5, 33, 9, false}};

void fused_equals_separate_ops(Precision precision) {
  const auto gpu = rt::cuda::make_cuda_backend(0, precision);
  for (const MlpCase& s : kCases) {
    const MlpInputs in(s);
    unsigned long long fused_launches = 0, separate_launches = 0;
    const Named fused = run_mlp(*gpu, true, s, in, &fused_launches);
    const Named separate = run_mlp(*gpu, false, s, in, &separate_launches);
    for (size_t t = 0; t < fused.size(); t++) {
      const auto& [name, got] = fused[t];
      const auto& want = separate[t].second;
      for (size_t i = 0; i < got.size(); i++)
        CHECK(std::memcmp(&got[i], &want[i], sizeof(float)) == 0,
              label(s) << " " << name << "[" << i << "]: fused " << got[i] << " vs separate ops " << want[i]);
    }
    note(std::string(precision == Precision::bf16 ? "bf16 " : "fp32 ") + label(s) + ": the three MLP ops launch " +
         std::to_string(fused_launches) + " kernels fused, " + std::to_string(separate_launches) + " as separate ops");
    // fp32 saves the split of the gate/up GEMM's columns and the join of their gradients; bf16 also the casts
    // of ln, h, the stacked gradient (twice) and dout (once of twice) before their GEMMs.
    const unsigned long long saved = precision == Precision::bf16 ? 8 : 2;
    if (rt::cuda::kEmulated)
      CHECK(separate_launches - fused_launches == saved,
            label(s) << ": " << fused_launches << " launches fused vs " << separate_launches << " separate");
  }
}

}  // namespace

// fp32: every output within 1e-5 of the CPU's separate ops.
TEST(cuda_fused_mlp_matches_cpu_fp32) {
  const auto gpu = rt::cuda::make_cuda_backend(0, Precision::fp32);
  for (const MlpCase& s : kCases) {
    const MlpInputs in(s);
    const Named cpu = run_mlp(cpu_backend<float>(), false, s, in);
    const Named dev = run_mlp(*gpu, true, s, in);
    for (size_t t = 0; t < cpu.size(); t++) {
      const auto& [name, want] = cpu[t];
      const std::vector<float>& got = dev[t].second;
      note(label(s) + " " + name + " max diff " +
           std::to_string(expect_close(label(s) + " " + name, got.data(), want.data(), want.size(), 1e-5, 1e-5)));
    }
  }
}

TEST(cuda_fused_mlp_equals_separate_ops_fp32) { fused_equals_separate_ops(Precision::fp32); }
TEST(cuda_fused_mlp_equals_separate_ops_bf16) { fused_equals_separate_ops(Precision::bf16); }

// bf16: each GEMM-derived output within the bf16 tolerance of the CPU's fp32 and visibly rounded; the norm's
// outputs and down_proj's bias gradient (fp32 math on fp32 inputs) within 1e-5.
TEST(cuda_fused_mlp_bf16_against_cpu_fp32) {
  const auto gpu = rt::cuda::make_cuda_backend(0, Precision::bf16);
  constexpr double kTol = 2e-2;  // relative L2; measured up to ~6e-3 (printed)
  for (const MlpCase& s : kCases) {
    const MlpInputs in(s);
    const Named cpu = run_mlp(cpu_backend<float>(), false, s, in);
    const Named dev = run_mlp(*gpu, true, s, in);
    for (size_t t = 0; t < cpu.size(); t++) {
      const auto& [name, want] = cpu[t];
      const double e = relative_l2(dev[t].second, want);
      const bool fp32_math = name == "ln" || name == "rstd" || name == "db_down";  // no GEMM on the way
      note(label(s) + " bf16 " + name + " relative L2 error " + std::to_string(e));
      CHECK(std::isfinite(e) && e <= (fp32_math ? 1e-5 : kTol), label(s) << " " << name << ": error " << e);
      if (!fp32_math) CHECK(e > 1e-6, label(s) << " " << name << ": error " << e << " shows no bf16 rounding");
    }
  }
}

// The fused kernels alone: the fp32 outputs against the CPU's swiglu ops, the bf16 copies equal to the rounding of
// the fp32 outputs and visibly rounded against the CPU's values (beyond the fp32 bound), at packed widths and odd
// ones, from aligned bases and from bases one element off (one element at a time).
TEST(cuda_split_swiglu_kernels_against_cpu) {
  const Backend<float>& cpu = cpu_backend<float>();
  for (int F : {24, 13}) {
    for (int offset : {0, 1}) {
      const int N = 11;
      const size_t NF = (size_t)N * F;
      const std::string at = "F=" + std::to_string(F) + (offset ? " (bases off by one)" : "") + " ";
      std::vector<float> packed(2 * NF + 1), dh(NF + 1);
      fill_uniform(packed, 51, 4.0), fill_uniform(dh, 52);
      std::vector<float> gate(NF), up(NF), h(NF), dg(NF), du(NF);
      for (int n = 0; n < N; n++)
        for (int c = 0; c < F; c++) {
          gate[(size_t)n * F + c] = packed[offset + (size_t)n * 2 * F + c];
          up[(size_t)n * F + c] = packed[offset + (size_t)n * 2 * F + F + c];
        }
      cpu.swiglu_forward(h.data(), gate.data(), up.data(), NF);
      cpu.swiglu_backward(dg.data(), du.data(), dh.data() + offset, gate.data(), up.data(), NF);

      DeviceBuffer<float> gp(packed), gdh(dh), ggate(NF + 1), gup(NF + 1), gh(NF + 1), gpk(2 * NF + 1);
      DeviceBuffer<rt::cuda::bf16> gh16(NF + 8), gpk16(2 * NF + 8);
      rt::cuda::split_swiglu_forward<float>(ggate.ptr + offset, gup.ptr + offset, gh.ptr + offset, gh16.ptr + offset,
                                            gp.ptr + offset, N, F, 0);
      rt::cuda::swiglu_backward_stacked<float>(gpk.ptr + offset, gpk16.ptr + offset, gdh.ptr + offset,
                                               ggate.ptr + offset, gup.ptr + offset, N, F, 0);
      auto tail = [&](const std::vector<float>& v, size_t n) {
        return std::vector<float>(v.begin() + offset, v.begin() + offset + n);
      };
      const std::vector<float> dgate = tail(ggate.download(), NF), dup = tail(gup.download(), NF),
                               dhv = tail(gh.download(), NF), dpk = tail(gpk.download(), 2 * NF);
      const std::vector<rt::cuda::bf16> h16 = gh16.download(), pk16 = gpk16.download();
      expect_close(at + "gate", dgate.data(), gate.data(), NF, 0, 0);
      expect_close(at + "up", dup.data(), up.data(), NF, 0, 0);
      expect_close(at + "h", dhv.data(), h.data(), NF, 1e-6, 1e-5);
      std::vector<float> joined(2 * NF);
      for (int n = 0; n < N; n++)
        for (int c = 0; c < F; c++) {
          joined[(size_t)n * 2 * F + c] = dg[(size_t)n * F + c];
          joined[(size_t)n * 2 * F + F + c] = du[(size_t)n * F + c];
        }
      expect_close(at + "stacked gradient", dpk.data(), joined.data(), 2 * NF, 1e-6, 1e-5);
      double worst = 0;
      auto rounded_copy = [&](const char* what, const std::vector<rt::cuda::bf16>& bits, const std::vector<float>& f32,
                              const std::vector<float>& cpu_values) {
        for (size_t i = 0; i < f32.size(); i++) {
          const float b = rt::cuda::test::to_float(bits[offset + i]);
          CHECK(b == rt::cuda::test::to_float(rt::cuda::test::from_float<rt::cuda::bf16>(f32[i])),
                at << what << "[" << i << "]: bf16 " << b << " is not the rounding of " << f32[i]);
          const double rel = std::fabs(b - cpu_values[i]) / std::max(std::fabs((double)cpu_values[i]), 1e-6);
          CHECK(rel <= 1.0 / 256, at << what << "[" << i << "]: bf16 " << b << " vs the CPU's " << cpu_values[i]);
          worst = std::max(worst, rel);
        }
      };
      rounded_copy("h16", h16, dhv, h);
      rounded_copy("stacked gradient bf16", pk16, dpk, joined);
      note(at + "bf16 copies: largest relative error against the CPU's fp32 " + std::to_string(worst));
      CHECK(worst > 1e-5, at << "the bf16 copies show no rounding (" << worst << ")");
    }
  }
}

// rmsnorm and the stacked q/k/v projection of its output in one backend call: against the CPU's separate ops
// (fp32, 1e-5) and the device's own separate ops (the same bits, fp32 and bf16; bf16 saves the cast of ln).
TEST(cuda_rmsnorm_linear_stacked_matches_separate_ops) {
  const Backend<float>& cpu = cpu_backend<float>();
  const int N = 13, C = 40, O[] = {32, 16, 16};
  const int total = O[0] + O[1] + O[2];
  std::vector<float> x((size_t)N * C), nw(C), w((size_t)total * C), b(total);
  fill_uniform(x, 61, 2.0), fill_uniform(nw, 62), fill_uniform(w, 63, 0.3), fill_uniform(b, 64);
  auto run = [&](const Backend<float>& ops, bool fused, unsigned long long* launches) {
    auto put = [&](const std::vector<float>& v) {
      Buffer<float> d = ops.zeros(v.size());
      ops.upload(d->data(), v.data(), v.size());
      return d;
    };
    Buffer<float> dx = put(x), dnw = put(nw), dw = put(w), db = put(b), ln = ops.zeros((size_t)N * C),
                  rstd = ops.zeros(N);
    Buffer<float> outs[3] = {ops.zeros((size_t)N * O[0]), ops.zeros((size_t)N * O[1]), ops.zeros((size_t)N * O[2])};
    float* const p[] = {outs[0]->data(), outs[1]->data(), outs[2]->data()};
#ifdef RINGTUNE_CUDA_EMU
    const unsigned long long before = ringtune_emu_kernel_launches();
#endif
    if (fused)
      ops.rmsnorm_linear_stacked(p, ln->data(), rstd->data(), dx->data(), dnw->data(), 1e-5, dw->data(), db->data(), O,
                                 3, N, C);
    else
      ops.Backend<float>::rmsnorm_linear_stacked(p, ln->data(), rstd->data(), dx->data(), dnw->data(), 1e-5, dw->data(),
                                                 db->data(), O, 3, N, C);
#ifdef RINGTUNE_CUDA_EMU
    if (launches) *launches = ringtune_emu_kernel_launches() - before;
#else
    if (launches) *launches = 0;
#endif
    std::vector<std::vector<float>> r;
    for (const Buffer<float>& t : {ln, rstd, outs[0], outs[1], outs[2]}) {
      r.emplace_back(t->size());
      ops.download(r.back().data(), t->data(), t->size());
    }
    return r;
  };
  const auto want = run(cpu, false, nullptr);
  for (Precision precision : {Precision::fp32, Precision::bf16}) {
    const auto gpu = rt::cuda::make_cuda_backend(0, precision);
    unsigned long long fused_launches = 0, separate_launches = 0;
    const auto fused = run(*gpu, true, &fused_launches), separate = run(*gpu, false, &separate_launches);
    const std::string p = precision == Precision::bf16 ? "bf16 " : "fp32 ";
    for (size_t t = 0; t < fused.size(); t++) {
      CHECK(std::memcmp(fused[t].data(), separate[t].data(), sizeof(float) * fused[t].size()) == 0,
            p << "tensor " << t << ": the fused call differs from the separate ops");
      if (precision == Precision::fp32)
        expect_close(p + "tensor " + std::to_string(t), fused[t].data(), want[t].data(), want[t].size(), 1e-5, 1e-5);
      else if (t >= 2) {
        const double e = relative_l2(fused[t], want[t]);
        CHECK(e > 1e-6 && e < 2e-2, p << "q/k/v part " << t - 2 << ": relative L2 error " << e);
      }
    }
    note(p + "rmsnorm + stacked q/k/v: " + std::to_string(fused_launches) + " launches fused, " +
         std::to_string(separate_launches) + " separate");
    if (rt::cuda::kEmulated)
      CHECK(separate_launches - fused_launches == (precision == Precision::bf16 ? 1u : 0u),
            p << fused_launches << " vs " << separate_launches);
  }
}
