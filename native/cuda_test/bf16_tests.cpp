// Precision bf16 on the CUDA backend (bf16_compute.h) against the CPU backend in fp32: every op bf16 changes
// (GEMM with each transpose, linear forward and backward, attention forward and backward on the tensor-core
// kernels at D = 64 and the SIMT kernels at D = 32) through the op interface; the product model's loss,
// logits and every gradient for a Llama and a Qwen2 config, LoRA on a frozen bf16 base, and the losses of a
// few AdamW steps; the compute copy following writes into the master weights; the cuBLASLt dispatch with bf16
// operands and an fp32 result (the stand-in).
//
// Errors are relative L2 errors, |got - want| / |want| over a whole tensor (bf16 keeps 8 bits of mantissa: a
// rounded operand is off by up to 2^-9 relative, and a dot product of rounded operands by about that over
// sqrt(K)). Each tolerance is about 3x the error measured under the emulator (printed by each check); the
// same comparisons in fp32 give errors below 1e-6. Each op check also requires an error above 1e-6, so an op
// that silently computes in fp32 fails here.
#include <cmath>
#include <memory>
#include <string>
#include <vector>
#include "backend.h"
#include "cublaslt_stand_in.h"
#include "cuda_backend.h"
#include "device_buffer.h"
#include "model.h"
#include "parallel.h"
#include "test_util.h"

using namespace rt;
using rt::cuda::Precision;
using rt::cuda::test::DeviceBuffer;
using rt::test::fill_uniform;
using rt::test::note;

namespace {

double relative_l2(const float* got, const float* want, size_t n) {
  double d = 0, w = 0;
  for (size_t i = 0; i < n; i++) {
    d += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
    w += (double)want[i] * want[i];
  }
  return std::sqrt(d) / std::max(std::sqrt(w), 1e-30);
}

// got against want within tol (relative L2); when bf16_visible, the error must also show bf16 rounding.
double within(const std::string& what, const std::vector<float>& got, const std::vector<float>& want, double tol,
              bool bf16_visible = false) {
  CHECK(got.size() == want.size(), what);
  const double e = relative_l2(got.data(), want.data(), want.size());
  note(what + " relative L2 error " + std::to_string(e) + " (tolerance " + std::to_string(tol) + ")");
  CHECK(std::isfinite(e) && e <= tol, what << ": relative L2 error " << e << " above " << tol);
  if (bf16_visible) CHECK(e > 1e-6, what << ": error " << e << " shows no bf16 rounding: computed in fp32?");
  return e;
}

std::vector<float> host(const Backend<float>& ops, const float* p, size_t n) {
  std::vector<float> v(n);
  ops.download(v.data(), p, n);
  return v;
}

// Tolerances (relative L2), from the errors measured under the emulator with a margin of about 3x.
constexpr double kGemmTol = 1e-2;       // measured ~3e-3
constexpr double kAttentionTol = 2e-2;  // measured ~5e-3 (P and dS are rounded to bf16 for their products)
constexpr double kLossTol = 1e-2;       // relative difference of a loss sum: measured up to ~4e-3 by step 3
constexpr double kLogitsTol = 3e-2;     // measured ~1e-2
constexpr double kGradTol = 6e-2;       // every gradient tensor of the model: measured up to ~2.9e-2

void attention_matches(const Backend<float>& gpu, int D) {
  const Backend<float>& cpu = cpu_backend<float>();
  const int B = 2, T = 40, H = 2, KVH = 1, N = B * T;
  const std::vector<SegmentRun> runs{{0, 0, T}, {1, 0, 24}, {1, 24, T - 24}};
  const AttentionShape s{B, T, H, KVH, D};
  std::vector<float> q(N * H * D), k(N * KVH * D), v(N * KVH * D), att(N * H * D), lse(B * H * T);
  fill_uniform(q, 8), fill_uniform(k, 9), fill_uniform(v, 10);
  DeviceBuffer<float> dq(q), dk(k), dv(v), datt(att.size()), dlse(lse.size());
  AttentionScratch<float> scratch;
  scratch.reserve(max_threads(), T);
  const std::string at = " D=" + std::to_string(D);
  cpu.attention_forward(att.data(), lse.data(), q.data(), k.data(), v.data(), runs, s, scratch);
  gpu.attention_forward(datt.ptr, dlse.ptr, dq.ptr, dk.ptr, dv.ptr, runs, s, scratch);
  within("attention_forward" + at, datt.download(), att, kAttentionTol, true);
  within("attention_forward lse" + at, dlse.download(), lse, kAttentionTol);
  std::vector<float> dout(att.size()), gq(q.size()), gk(k.size()), gv(v.size());
  fill_uniform(dout, 11);
  DeviceBuffer<float> ddout(dout), dgq(q.size()), dgk(k.size()), dgv(v.size());
  cpu.attention_backward(gq.data(), gk.data(), gv.data(), dout.data(), q.data(), k.data(), v.data(), att.data(),
                         lse.data(), runs, s, scratch);
  gpu.attention_backward(dgq.ptr, dgk.ptr, dgv.ptr, ddout.ptr, dq.ptr, dk.ptr, dv.ptr, datt.ptr, dlse.ptr, runs, s,
                         scratch);
  within("attention_backward dq" + at, dgq.download(), gq, kAttentionTol, true);
  within("attention_backward dk" + at, dgk.download(), gk, kAttentionTol, true);
  within("attention_backward dv" + at, dgv.download(), gv, kAttentionTol, true);
}

}  // namespace

TEST(cuda_bf16_ops_match_the_cpu_ops_through_the_seam) {
  const Backend<float>& cpu = cpu_backend<float>();
  const auto owner = rt::cuda::make_cuda_backend(0, Precision::bf16);
  const Backend<float>& gpu = *owner;
  CHECK(std::string(gpu.name()).find(" bf16 ") != std::string::npos, gpu.name());
  // GEMM, every transpose, leading dimensions wider than the rows, alpha and beta
  const int M = 37, Nn = 29, K = 70, pad = 3;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      const int lda = (ta ? M : K) + pad, ldb = (tb ? K : Nn) + pad, ldc = Nn + pad;
      std::vector<float> A((size_t)(ta ? K : M) * lda), Bm((size_t)(tb ? Nn : K) * ldb), C((size_t)M * ldc);
      fill_uniform(A, 1 + ta), fill_uniform(Bm, 3 + tb), fill_uniform(C, 5);
      DeviceBuffer<float> dA(A), dB(Bm), dC(C);
      cpu.gemm(ta, tb, M, Nn, K, 0.5f, A.data(), lda, Bm.data(), ldb, 2.f, C.data(), ldc);
      gpu.gemm(ta, tb, M, Nn, K, 0.5f, dA.ptr, lda, dB.ptr, ldb, 2.f, dC.ptr, ldc);
      within("gemm ta=" + std::to_string(ta) + " tb=" + std::to_string(tb), dC.download(), C, kGemmTol, true);
    }
  // linear with bias, forward and backward (dw, db accumulate onto what is there)
  const int N = 64, I = 128, O = 96;
  std::vector<float> x(N * I), w(O * I), b(O), dout(N * O), dw(O * I), db(O), out(N * O), dinp(N * I);
  fill_uniform(x, 1), fill_uniform(w, 2, 0.2), fill_uniform(b, 3), fill_uniform(dout, 4), fill_uniform(dw, 5);
  fill_uniform(db, 6);
  DeviceBuffer<float> dx(x), dwt(w), dbias(b), ddout(dout), ddw(dw), ddb(db), dy(out.size()), ddinp(dinp.size());
  cpu.linear_forward(out.data(), x.data(), w.data(), b.data(), N, I, O);
  gpu.linear_forward(dy.ptr, dx.ptr, dwt.ptr, dbias.ptr, N, I, O);
  within("linear_forward", dy.download(), out, kGemmTol, true);
  cpu.linear_backward(dinp.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), N, I, O);
  gpu.linear_backward(ddinp.ptr, ddw.ptr, ddb.ptr, ddout.ptr, dx.ptr, dwt.ptr, N, I, O);
  within("linear_backward dinp", ddinp.download(), dinp, kGemmTol, true);
  within("linear_backward dw", ddw.download(), dw, kGemmTol, true);
  within("linear_backward db (fp32)", ddb.download(), db, 1e-5);
  attention_matches(gpu, 64);  // the tensor-core kernels
  attention_matches(gpu, 32);  // the SIMT kernels over bf16
}

// The GEMMs read the weights' bf16 compute copy: it follows AdamW's update (written by the same kernel) and any
// other write into the master weights (an upload, a copy, a fill), and a copy outlives no master.
TEST(cuda_bf16_compute_copy_follows_the_master_weights) {
  const Backend<float>& cpu = cpu_backend<float>();
  const auto gpu = rt::cuda::make_cuda_backend(0, Precision::bf16);
  const int N = 16, I = 64, O = 48;
  std::vector<float> x(N * I), w(O * I), out(N * O);
  fill_uniform(x, 1), fill_uniform(w, 2);
  DeviceBuffer<float> dx(x), dy(out.size());
  Buffer<float> master = gpu->zeros(w.size());
  gpu->keep_compute_copy(master);
  gpu->keep_compute_copy(master);  // kept once
  gpu->upload(master->data(), w.data(), w.size());
  auto expect_weights = [&](const std::string& what) {
    cpu.linear_forward(out.data(), x.data(), w.data(), nullptr, N, I, O);
    gpu->linear_forward(dy.ptr, dx.ptr, master->data(), nullptr, N, I, O);
    within(what, dy.download(), out, kGemmTol);
  };
  expect_weights("after an upload");
  std::vector<float> g(w.size()), m(w.size(), 0.f), v(w.size(), 0.f);
  fill_uniform(g, 3);
  DeviceBuffer<float> dg(g), dm(m), dv(v);
  const AdamWStep step{0.05, 0.9, 0.999, 1e-8, 0.1, 0.1, 0.001, 1.0};  // large lr: a visible change
  for (int s = 0; s < 2; s++) {
    cpu.adamw_update(w.data(), g.data(), m.data(), v.data(), w.size(), step, true);
    gpu->adamw_update(master->data(), dg.ptr, dm.ptr, dv.ptr, w.size(), step, true);
    expect_weights("after AdamW step " + std::to_string(s));
  }
  std::fill(w.begin(), w.begin() + I, 0.25f);  // the first row
  gpu->fill(master->data(), I, 0.25f);
  expect_weights("after a fill");
  std::copy(x.begin(), x.begin() + 2 * I, w.begin() + I);  // rows 1 and 2
  gpu->copy(master->data() + I, dx.ptr, 2 * I);
  expect_weights("after a copy");
}

// The backend in bf16 through the cuBLASLt dispatch (the stand-in that runs on the emulator): bf16 A and B, an
// fp32 result, and the same values as the own GEMM gives.
TEST(cuda_bf16_dispatches_bf16_operands_with_an_fp32_result_to_cublaslt) {
  rt::cuda::test::LtStandInLog log;
  const auto lt = rt::cuda::make_cuda_backend(0, rt::cuda::make_cublaslt_gemm_from(rt::cuda::test::lt_stand_in(&log)),
                                              Precision::bf16);
  const auto own = rt::cuda::make_cuda_backend(0, rt::cuda::make_own_gemm(), Precision::bf16);
  const int N = 9, I = 40, O = 24;
  std::vector<float> x(N * I), w(O * I);
  fill_uniform(x, 1), fill_uniform(w, 2);
  DeviceBuffer<float> dx(x), dw(w), a(N * O), b(N * O);
  lt->linear_forward(a.ptr, dx.ptr, dw.ptr, nullptr, N, I, O);
  own->linear_forward(b.ptr, dx.ptr, dw.ptr, nullptr, N, I, O);
  CHECK(log.matmuls == 1, log.matmuls);
  CHECK(log.last_ab == rt::cuda::DType::BF16, "cuBLASLt got fp32 operands");
  CHECK(log.last_c == rt::cuda::DType::F32, "cuBLASLt wrote a bf16 result");
  const std::vector<float> ga = a.download(), gb = b.download();
  for (size_t i = 0; i < ga.size(); i++) CHECK(ga[i] == gb[i], "element " << i << ": " << ga[i] << " vs " << gb[i]);
}

namespace {

ModelConfig tiny(bool qwen2) {
  ModelConfig c;
  c.vocab_size = 61;
  c.hidden_size = 128;
  c.intermediate_size = 160;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 64;  // the tensor-core attention
  c.rope_theta = 10000;
  c.qkv_bias = qwen2;
  c.tie_word_embeddings = qwen2;
  return c;
}

// Two rows of 24: row 0 one segment, row 1 two (16 + 8), a few positions without a target.
struct TinyBatch {
  static constexpr int rows = 2, T = 24, N = rows * T;
  std::vector<int32_t> ids, labels, pos, seg;
  TinyBatch(int vocab, int salt) : ids(N), labels(N), pos(N), seg(N) {
    for (int i = 0; i < N; i++) {
      const int t = i % T;
      const bool second = i >= T && t >= 16;
      ids[i] = (int32_t)((i * 7 + 3 + salt) % vocab);
      labels[i] = t % 5 == 0 ? kIgnoreIndex : (int32_t)((i * 11 + 1 + salt) % vocab);
      pos[i] = second ? t - 16 : t;
      seg[i] = i < T ? 0 : (second ? 2 : 1);
    }
  }
  Batch batch() const { return {rows, T, ids.data(), labels.data(), pos.data(), seg.data()}; }
};

void close_loss(const std::string& what, double got, double want, double tol) {
  const double e = std::fabs(got - want) / std::max(std::fabs(want), 1e-30);
  note(what + " " + std::to_string(got) + " vs " + std::to_string(want) + " relative error " + std::to_string(e) +
       " (tolerance " + std::to_string(tol) + ")");
  CHECK(std::isfinite(got) && e <= tol, what << ": " << got << " vs " << want);
}

// One step's loss, logits and every trainable gradient, then `steps` AdamW steps' losses.
void model_matches(bool qwen2, bool lora, int steps) {
  const ModelConfig c = tiny(qwen2);
  const auto gpu = rt::cuda::make_cuda_backend(0, Precision::bf16);
  Model<float> on_gpu(c, *gpu, lora), on_cpu(c, cpu_backend<float>(), lora);
  on_gpu.init_random(5, 0.1);
  on_cpu.init_random(5, 0.1);
  if (lora) {
    LoraConfig l;
    l.rank = 4, l.alpha = 8, l.dropout = 0.1, l.seed = 3, l.base_bf16 = true;
    l.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    on_gpu.enable_lora(l);
    on_cpu.enable_lora(l);
  }
  const std::string name = std::string(qwen2 ? "qwen2" : "llama") + (lora ? " lora" : "");
  AdamWOptions ao;
  ao.lr = 1e-2;  // the weights move visibly in a few steps (and the two models' trajectories part a little more)
  ao.weight_decay = 0.1;
  ao.max_grad_norm = 1.0;
  for (int s = 0; s <= steps; s++) {
    const TinyBatch tb(c.vocab_size, s);
    StepOptions o;
    o.keep_logits = s == 0;
    on_gpu.zero_grad();
    on_cpu.zero_grad();
    const StepResult rg = on_gpu.forward_backward(tb.batch(), o), rc = on_cpu.forward_backward(tb.batch(), o);
    CHECK(rg.targets == rc.targets);
    close_loss(name + " step " + std::to_string(s) + " loss", rg.loss_sum, rc.loss_sum, kLossTol);
    if (s == 0) {
      const size_t nl = (size_t)TinyBatch::N * c.vocab_size;
      within(name + " logits", host(*gpu, on_gpu.logits(), nl),
             std::vector<float>(on_cpu.logits(), on_cpu.logits() + nl), kLogitsTol, true);
      for (const ParamEntry& e : on_cpu.trainable_entries())
        within(name + " grad " + e.name, host(*gpu, on_gpu.grads() + e.offset, e.size),
               std::vector<float>(on_cpu.grads() + e.offset, on_cpu.grads() + e.offset + e.size), kGradTol);
    }
    on_gpu.adamw_step(ao);
    on_cpu.adamw_step(ao);
  }
}

}  // namespace

TEST(cuda_bf16_model_matches_the_cpu_model_llama) { model_matches(false, false, 3); }
TEST(cuda_bf16_model_matches_the_cpu_model_qwen2) { model_matches(true, false, 3); }
TEST(cuda_bf16_lora_on_a_bf16_base_matches_the_cpu) { model_matches(true, true, 2); }
