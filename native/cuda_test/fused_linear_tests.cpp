// Fewer, wider kernels through the backend seam, against the CPU backend's separate calls (fp32): stacked
// projections (q | k | v with biases, gate | up without: one GEMM and a split forward, a join and one GEMM per
// gradient backward), a residual and a bias added in the GEMM's epilogue, on the own kernels and through the
// cuBLASLt dispatch (its stand-in); and a trained model whose LM head runs in chunks with the cross entropy in
// place, against the CPU model's head over all logits at once.
#include <memory>
#include <string>
#include <vector>
#include "backend.h"
#include "cublaslt_stand_in.h"
#include "cuda_backend.h"
#include "device_buffer.h"
#include "gemm.cuh"
#include "model.h"
#include "test_util.h"

using namespace rt;
using rt::cuda::test::DeviceBuffer;
using rt::test::expect_close;
using rt::test::fill_uniform;
using rt::test::note;

namespace {

void same(const std::string& what, const DeviceBuffer<float>& got, const std::vector<float>& want) {
  const std::vector<float> g = got.download();
  note(what + " max diff " + std::to_string(expect_close(what, g.data(), want.data(), want.size(), 1e-5, 1e-5)));
}

// Parts of widths O over one input (N, I), with or without biases: forward and backward on both backends.
void stacked_matches(const Backend<float>& gpu, const std::vector<int>& O, bool with_bias) {
  const Backend<float>& cpu = cpu_backend<float>();
  const int N = 37, I = 48, parts = (int)O.size();
  int total = 0;
  for (int o : O) total += o;
  const std::string name = "stacked " + std::to_string(parts) + (with_bias ? " with bias" : "") + ": ";
  std::vector<float> x((size_t)N * I), w((size_t)total * I), b(total), dw((size_t)total * I), db(total);
  fill_uniform(x, 1), fill_uniform(w, 2, 0.2), fill_uniform(b, 3), fill_uniform(dw, 4), fill_uniform(db, 5);
  DeviceBuffer<float> gx(x), gw(w), gb(b), gdw(dw), gdb(db), gdinp((size_t)N * I);
  std::vector<std::vector<float>> outs, douts;
  std::vector<std::unique_ptr<DeviceBuffer<float>>> gouts, gdouts;
  std::vector<float*> out_p, gout_p;
  std::vector<const float*> dout_p, gdout_p;
  for (int j = 0; j < parts; j++) {
    outs.emplace_back((size_t)N * O[j]);
    douts.emplace_back((size_t)N * O[j]);
    fill_uniform(douts.back(), 10 + j);
    gouts.push_back(std::make_unique<DeviceBuffer<float>>((size_t)N * O[j]));
    gdouts.push_back(std::make_unique<DeviceBuffer<float>>(douts.back()));
  }
  for (int j = 0; j < parts; j++) {
    out_p.push_back(outs[j].data()), gout_p.push_back(gouts[j]->ptr);
    dout_p.push_back(douts[j].data()), gdout_p.push_back(gdouts[j]->ptr);
  }
  cpu.linear_forward_stacked(out_p.data(), x.data(), w.data(), with_bias ? b.data() : nullptr, O.data(), parts, N, I);
  gpu.linear_forward_stacked(gout_p.data(), gx.ptr, gw.ptr, with_bias ? gb.ptr : nullptr, O.data(), parts, N, I);
  for (int j = 0; j < parts; j++) same(name + "out " + std::to_string(j), *gouts[j], outs[j]);

  std::vector<float> dinp((size_t)N * I), scratch((size_t)N * I);
  cpu.linear_backward_stacked(dinp.data(), dw.data(), with_bias ? db.data() : nullptr, dout_p.data(), x.data(),
                              w.data(), O.data(), parts, N, I, scratch.data());
  gpu.linear_backward_stacked(gdinp.ptr, gdw.ptr, with_bias ? gdb.ptr : nullptr, gdout_p.data(), gx.ptr, gw.ptr,
                              O.data(), parts, N, I, nullptr);
  same(name + "dinp", gdinp, dinp);
  same(name + "dw (accumulated)", gdw, dw);
  if (with_bias) same(name + "db (accumulated)", gdb, db);
}

// out = residual + x W^T + b, into a buffer of its own and in place over the residual (as generation aliases them).
void residual_matches(const Backend<float>& gpu) {
  const Backend<float>& cpu = cpu_backend<float>();
  const int N = 29, I = 40, O = 24;
  std::vector<float> x((size_t)N * I), w((size_t)O * I), b(O), res((size_t)N * O), out((size_t)N * O);
  std::vector<float> scratch((size_t)N * O);
  fill_uniform(x, 21), fill_uniform(w, 22, 0.2), fill_uniform(b, 23), fill_uniform(res, 24);
  DeviceBuffer<float> gx(x), gw(w), gb(b), gres(res), gout((size_t)N * O);
  cpu.linear_forward_residual(out.data(), res.data(), x.data(), w.data(), b.data(), N, I, O, scratch.data());
  gpu.linear_forward_residual(gout.ptr, gres.ptr, gx.ptr, gw.ptr, gb.ptr, N, I, O, nullptr);
  same("residual epilogue", gout, out);
  gpu.linear_forward_residual(gres.ptr, gres.ptr, gx.ptr, gw.ptr, gb.ptr, N, I, O, nullptr);
  same("residual epilogue in place", gres, out);
  // the bias alone (linear_forward): in the epilogue now, not a kernel of its own
  cpu.linear_forward(out.data(), x.data(), w.data(), b.data(), N, I, O);
  gpu.linear_forward(gout.ptr, gx.ptr, gw.ptr, gb.ptr, N, I, O);
  same("bias epilogue", gout, out);
}

void fused_linear_matches(const Backend<float>& gpu) {
  note(std::string("backend: ") + gpu.name());
  stacked_matches(gpu, {64, 16, 16}, true);  // q | k | v of a GQA layer, Qwen2's biases
  stacked_matches(gpu, {40, 40}, false);     // gate | up
  stacked_matches(gpu, {24}, true);          // one part
  residual_matches(gpu);
}

ModelConfig tiny(bool qwen2) {
  ModelConfig c;
  c.vocab_size = 61;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 32;
  c.rope_theta = 10000;
  c.qkv_bias = qwen2;
  c.tie_word_embeddings = qwen2;
  return c;
}

std::vector<float> host(const Backend<float>& ops, const float* p, size_t n) {
  std::vector<float> v(n);
  ops.download(v.data(), p, n);
  return v;
}

// A full training step with the head in chunks of 7 positions (the last ragged) on the device, the CPU's head
// over all logits at once: the same loss, token losses and gradients (the head's weight gradient accumulated
// chunk by chunk), and the device never held the whole batch's logits.
void chunked_head_matches(bool qwen2) {
  const ModelConfig c = tiny(qwen2);
  const auto gpu = rt::cuda::make_cuda_backend(0);
  Model<float> on_gpu(c, *gpu), on_cpu(c);
  on_gpu.set_head_chunk_rows(7);
  on_gpu.init_random(7, 0.1);
  on_cpu.init_random(7, 0.1);
  const int rows = 2, T = 24, N = rows * T;
  std::vector<int32_t> ids(N), labels(N), pos(N), seg(N);
  for (int i = 0; i < N; i++) {
    const int t = i % T;
    ids[i] = (int32_t)((i * 5 + 2) % c.vocab_size);
    labels[i] = t % 4 == 1 ? kIgnoreIndex : (int32_t)((i * 13 + 3) % c.vocab_size);
    pos[i] = t;
    seg[i] = i / T;
  }
  const Batch b{rows, T, ids.data(), labels.data(), pos.data(), seg.data()};
  const StepOptions o;  // training, logits not kept
  const StepResult rg = on_gpu.forward_backward(b, o), rc = on_cpu.forward_backward(b, o);
  CHECK(rg.targets == rc.targets, rg.targets << " targets on the device, " << rc.targets << " on the CPU");
  expect_close("loss", &rg.loss_sum, &rc.loss_sum, 1, 1e-5, 1e-5);
  const std::vector<float> tl = host(*gpu, on_gpu.token_losses(), N);
  expect_close("token losses", tl.data(), on_cpu.token_losses(), N, 1e-5, 1e-5);
  for (const ParamEntry& e : on_cpu.table().entries) {
    const std::vector<float> g = host(*gpu, on_gpu.grads() + e.offset, e.size);
    expect_close("grad " + e.name, g.data(), on_cpu.grads() + e.offset, e.size, 1e-5, 1e-5);
  }
  CHECK(on_gpu.logits() == nullptr, "chunked logits reported as kept");
  // The same step with the head over all logits at once on the device: what the chunks save.
  Model<float> whole(c, *gpu);
  whole.set_head_chunk_rows(0);
  whole.init_random(7, 0.1);
  whole.forward_backward(b, o);
  const size_t all_logits = (size_t)N * c.vocab_size * sizeof(float), chunk = (size_t)7 * c.vocab_size * sizeof(float);
  CHECK(whole.memory().activations - on_gpu.memory().activations == all_logits - chunk,
        "activations " << on_gpu.memory().activations << " chunked, " << whole.memory().activations
                       << " whole: the chunked head holds " << chunk << " bytes of logits, not " << all_logits);
}

}  // namespace

TEST(cuda_fused_linear_ops_match_the_cpu_ops_own_gemm) {
  const auto gpu = rt::cuda::make_cuda_backend(0, rt::cuda::make_own_gemm());
  fused_linear_matches(*gpu);
}

TEST(cuda_fused_linear_ops_match_the_cpu_ops_through_cublaslt_epilogues) {
  rt::cuda::test::LtStandInLog log;
  const auto gpu = rt::cuda::make_cuda_backend(0, rt::cuda::make_cublaslt_gemm_from(rt::cuda::test::lt_stand_in(&log)));
  fused_linear_matches(*gpu);
  CHECK(log.misaligned == 0, log.misaligned << " misaligned matmuls");
  // the biased stacked forwards (2), the residual GEMMs (2) and the biased linear_forward (1); the residual in
  // place over the output is Lt's C = D with beta 1, so one residual with a C of its own
  CHECK(log.bias_epilogues == 5 && log.residual_adds == 1,
        log.bias_epilogues << " bias epilogues, " << log.residual_adds << " residual adds");
}

TEST(cuda_chunked_head_trains_as_the_cpu_head_llama) { chunked_head_matches(false); }
TEST(cuda_chunked_head_trains_as_the_cpu_head_qwen2_tied) { chunked_head_matches(true); }
