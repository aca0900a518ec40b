// One training step of the 124M-class model on the GPU through the product model (native/src/model.cpp)
// over the CUDA backend: vocab 32000, hidden 768, intermediate 2048, 12 layers, 12 heads, 4 KV heads (head
// dim 64), 16 rows of 1024 tokens (16k tokens), fp32 (the CUDA backend's precision today). Prints tokens/s
// and model FLOP utilisation against the fp32 GEMM peak measured by the same binary in the same run.
//   ringtune_cuda_bench [--steps N] [--rows R] [--seq T]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>
#include "cuda_backend.h"
#include "gemm.cuh"
#include "model.h"

using namespace rt;

namespace {

ModelConfig bench_config() {
  ModelConfig c;
  c.vocab_size = 32000;
  c.hidden_size = 768;
  c.intermediate_size = 2048;
  c.num_layers = 12;
  c.num_heads = 12;
  c.num_kv_heads = 4;
  c.head_dim = 64;
  c.rope_theta = 10000;
  c.rms_norm_eps = 1e-5;
  return c;
}

// The fp32 GEMM the backend runs, on one large square product: the ceiling the step is measured against.
double fp32_gemm_peak_tflops(const Backend<float>& ops) {
  const int n = 4096;
  const Buffer<float> a = ops.zeros((size_t)n * n), b = ops.zeros((size_t)n * n), c = ops.zeros((size_t)n * n);
  ops.gemm(false, true, n, n, n, 1.f, a->data(), n, b->data(), n, 0.f, c->data(), n);
  CUDA_CHECK(cudaDeviceSynchronize());
  double best = 1e30;
  for (int r = 0; r < 3; r++) {
    const auto t0 = std::chrono::steady_clock::now();
    ops.gemm(false, true, n, n, n, 1.f, a->data(), n, b->data(), n, 0.f, c->data(), n);
    CUDA_CHECK(cudaDeviceSynchronize());
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * n * n * (double)n / best / 1e12;
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 5, rows = 16, seq = 1024;
  for (int i = 1; i + 1 < argc; i++) {
    if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--rows")) rows = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--seq")) seq = std::atoi(argv[++i]);
  }
  try {
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    const auto backend = cuda::make_cuda_backend(0);
    std::printf("device: %s; backend: %s\n", prop.name, backend->name());
    const double peak = fp32_gemm_peak_tflops(*backend);
    std::printf("fp32 GEMM peak (4096^3): %.1f TFLOP/s\n", peak);
    const ModelConfig c = bench_config();
    Model<float> m(c, *backend);
    m.init_random(1, 0.02);
    // One segment per row; the label of each position is the next token (none at a row's end).
    const size_t N = (size_t)rows * seq;
    std::vector<int32_t> ids(N), labels(N), pos(N), seg(N);
    uint64_t x = 12345;
    for (size_t n = 0; n < N; n++) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      ids[n] = (int32_t)((x >> 33) % c.vocab_size);
      pos[n] = (int32_t)(n % seq);
      seg[n] = (int32_t)(n / seq);
    }
    for (size_t n = 0; n < N; n++) labels[n] = (n + 1) % seq == 0 ? kIgnoreIndex : ids[n + 1];
    const Batch batch{rows, seq, ids.data(), labels.data(), pos.data(), seg.data()};
    AdamWOptions ao;
    ao.lr = 3e-4, ao.beta2 = 0.95, ao.weight_decay = 0.1, ao.max_grad_norm = 1.0;
    StepResult r;
    AdamWResult a;
    auto step = [&] {
      m.zero_grad();
      r = m.forward_backward(batch, StepOptions{});
      a = m.adamw_step(ao);
      CUDA_CHECK(cudaDeviceSynchronize());
    };
    step();  // warm-up: activations, GEMM plans
    std::vector<double> times;
    for (int s = 0; s < steps; s++) {
      const auto t0 = std::chrono::steady_clock::now();
      step();
      times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(times.begin(), times.end());
    const double ms = times[times.size() / 2];
    const double matmul_params =
        (double)c.num_layers * ((double)c.hidden_size * c.q_dim() * 2 + 2.0 * c.hidden_size * c.kv_dim() +
                                3.0 * c.hidden_size * c.intermediate_size) +
        (double)c.vocab_size * c.hidden_size;
    const double attn = 3.0 * c.num_layers * 4.0 * rows * (double)seq * seq / 2 * c.num_heads * c.head_dim;
    const double flops = 6.0 * N * matmul_params + attn;
    const double achieved = flops / (ms / 1e3) / 1e12;
    std::printf("params %.1fM; step %.2f ms (median of %d); %.0f tokens/s\n", m.num_params() / 1e6, ms, steps,
                N / (ms / 1e3));
    std::printf("model FLOPs/step %.2f T (attention %.2f T, causal); achieved %.1f TFLOP/s; MFU vs fp32 GEMM %.1f%%\n",
                flops / 1e12, attn / 1e12, achieved, 100 * achieved / peak);
    std::printf("last loss %.4f (mean over targets), grad norm %.3f\n", r.loss_sum / r.targets, a.grad_norm);
    std::printf("RESULT tokens_per_s=%.0f step_ms=%.2f mfu_pct=%.1f gemm_peak_tflops=%.1f\n", N / (ms / 1e3), ms,
                100 * achieved / peak, peak);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
