// The product model over the CUDA backend against the same model over the CPU backend, fp32: a Llama-like
// and a Qwen2-like config (biases, tied embeddings), packed rows with two segments, a training step (loss,
// logits, every gradient, the AdamW update) and greedy generation over the KV cache.
#include <string>
#include <vector>
#include "cuda_backend.h"
#include "model.h"
#include "test_util.h"

using namespace rt;
using rt::test::expect_close;
using rt::test::note;

namespace {

ModelConfig tiny(bool qwen2) {
  ModelConfig c;
  c.vocab_size = 61;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 32;  // a head size the CUDA attention kernels are built for
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

void close(const std::string& what, const std::vector<float>& got, const float* want, double tol) {
  note(what + " max diff " + std::to_string(expect_close(what, got.data(), want, got.size(), tol, tol)));
}

void model_matches(bool qwen2) {
  const ModelConfig c = tiny(qwen2);
  const auto gpu = rt::cuda::make_cuda_backend(0);
  Model<float> on_gpu(c, *gpu), on_cpu(c);
  on_gpu.init_random(5, 0.1);
  on_cpu.init_random(5, 0.1);
  const size_t P = on_cpu.num_params();
  const std::vector<float> p0 = host(*gpu, on_gpu.params(), P);
  close("initial weights", p0, on_cpu.params(), 0);

  // two rows of 24: row 0 one segment, row 1 two segments (16 + 8), a few positions without a target
  const int rows = 2, T = 24, N = rows * T;
  std::vector<int32_t> ids(N), labels(N), pos(N), seg(N);
  for (int i = 0; i < N; i++) {
    const int t = i % T;
    const bool second = i >= T && t >= 16;
    ids[i] = (int32_t)((i * 7 + 3) % c.vocab_size);
    labels[i] = t % 5 == 0 ? kIgnoreIndex : (int32_t)((i * 11 + 1) % c.vocab_size);
    pos[i] = second ? t - 16 : t;
    seg[i] = i < T ? 0 : (second ? 2 : 1);
  }
  const Batch b{rows, T, ids.data(), labels.data(), pos.data(), seg.data()};
  StepOptions o;
  o.keep_logits = true;
  const StepResult rg = on_gpu.forward_backward(b, o), rc = on_cpu.forward_backward(b, o);
  CHECK(rg.targets == rc.targets);
  expect_close("loss", &rg.loss_sum, &rc.loss_sum, 1, 1e-5, 1e-5);
  close("logits", host(*gpu, on_gpu.logits(), (size_t)N * c.vocab_size), on_cpu.logits(), 1e-5);
  close("token losses", host(*gpu, on_gpu.token_losses(), N), on_cpu.token_losses(), 1e-5);
  for (const ParamEntry& e : on_cpu.table().entries)
    close("grad " + e.name, host(*gpu, on_gpu.grads() + e.offset, e.size), on_cpu.grads() + e.offset, 1e-5);
  AdamWOptions ao;
  ao.weight_decay = 0.1;
  ao.max_grad_norm = 1.0;
  // AdamW's first step is lr * g / (|g| + eps): with eps far below a gradient's rounding error the update of a
  // near-zero gradient follows that error. A larger eps keeps the comparison about the update, not the noise.
  ao.eps = 1e-4;
  const AdamWResult ag = on_gpu.adamw_step(ao), ac = on_cpu.adamw_step(ao);
  expect_close("grad norm", &ag.grad_norm, &ac.grad_norm, 1, 1e-6, 1e-5);
  close("weights after AdamW", host(*gpu, on_gpu.params(), P), on_cpu.params(), 1e-5);

  GenerateOptions g;
  g.prompt = {3, 9, 27, 4};
  g.max_new = 6;
  std::vector<std::vector<float>> lg, lc;
  const std::vector<int32_t> tg = on_gpu.generate(g, &lg), tc = on_cpu.generate(g, &lc);
  CHECK(tg == tc, "greedy tokens differ");
  for (size_t k = 0; k < lc.size(); k++) close("generation step logits", lg[k], lc[k].data(), 1e-5);
}

}  // namespace

TEST(model_on_the_cuda_backend_trains_and_generates_as_on_the_cpu_llama) { model_matches(false); }
TEST(model_on_the_cuda_backend_trains_and_generates_as_on_the_cpu_qwen2) { model_matches(true); }
