// CPU training-step benchmark of the native core. One step = forward, backward, AdamW, in fp32,
// on vocab 32000, hidden 512, intermediate 1408, 8 layers, 8 heads, 2 KV heads, one row of 512 tokens.
// The baseline is a 1024^3 OpenBLAS sgemm measured in the same run: these machines are shared and noisy.
#include <sys/resource.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>
#include "bench_model.h"
#include "benches.h"
#include "blas.h"
#include "machine.h"
#include "model.h"
#include "parallel.h"
#include "random.h"

using namespace rt;
using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Best of several runs of C = A B for 1024^3: the GEMM peak this machine gives right now.
static double sgemm_gflops() {
  const int n = 1024;
  std::vector<float> a((size_t)n * n), b((size_t)n * n), c((size_t)n * n);
  for (size_t i = 0; i < a.size(); i++) a[i] = b[i] = (float)(uniform01(1, 1, i) - 0.5);
  gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);  // warm-up
  double best = 1e9;
  for (int r = 0; r < 8; r++) {
    const auto t0 = Clock::now();
    gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * n * n * n / best / 1e9;
}

int run_bench(int argc, char** argv) {
  int steps = 5;
  for (int i = 0; i < argc; i++)
    if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::atoi(argv[++i]);
  const ModelConfig c = bench_model_config();
  const int rows = 1, T = 512;

  Model<float> m(c);
  m.init_random(0, 0.02);
  std::vector<int32_t> ids(rows * T), labels(rows * T), pos(rows * T), seg(rows * T, 0);
  for (int i = 0; i < rows * T; i++) {
    ids[i] = (int32_t)(uniform01(3, 0, i) * c.vocab_size);
    pos[i] = i % T;
  }
  for (int i = 0; i < rows * T; i++) labels[i] = i + 1 < rows * T ? ids[i + 1] : -100;
  const Batch b{rows, T, ids.data(), labels.data(), pos.data(), seg.data()};
  const AdamWOptions opt{1e-4, 0.9, 0.95, 1e-8, 0.1, 1.0};

  const double gemm_before = sgemm_gflops();
  auto step = [&] {
    m.zero_grad();
    m.forward_backward(b, {true, false, 0});
    m.adamw_step(opt);
  };
  step();  // warm-up: allocates activations, faults pages in
  std::vector<double> times;
  for (int s = 0; s < steps; s++) {
    const auto t0 = Clock::now();
    step();
    times.push_back(seconds_since(t0));
  }
  const double gemm_after = sgemm_gflops();
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];

  // Model FLOPs: 6 x (parameters that multiply activations) x tokens, plus causal attention
  // (QK^T and PV: 2 x 2 x T^2/2 x D x H per layer forward, x3 with the backward). The input embedding is a
  // lookup, not a matmul, so it is left out; the untied LM head is in.
  const double tokens = (double)rows * T;
  const double matmul_params = (double)m.num_params() - (double)c.vocab_size * c.hidden_size;
  const double attn_flops = 3.0 * 2 * 2 * (double)T * T / 2 * c.head_dim * c.num_heads * c.num_layers * rows;
  const double flops = 6.0 * matmul_params * tokens + attn_flops;
  const double gflops = flops / median / 1e9;
  const double gemm_ref = std::max(gemm_before, gemm_after);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  const double rss_mb = ru.ru_maxrss / 1024.0;
  const MemoryReport mem = m.memory();

  std::printf("machine: %s, %u hardware threads, %d OpenMP threads\n", cpu_model().c_str(),
              std::thread::hardware_concurrency(), max_threads());
  std::printf("model: %s, %.1fM parameters (%.1fM in matmuls), rows %d x %d tokens\n", c.describe().c_str(),
              m.num_params() / 1e6, matmul_params / 1e6, rows, T);
  std::printf("step (fwd+bwd+AdamW): median %.1f ms over %d steps (min %.1f, max %.1f)\n", median * 1e3, steps,
              times.front() * 1e3, times.back() * 1e3);
  std::printf("tokens/s: %.0f\n", tokens / median);
  std::printf("achieved: %.1f GFLOP/s (%.1f GFLOP per step)\n", gflops, flops / 1e9);
  std::printf("sgemm 1024^3 in the same run: %.1f GFLOP/s (before %.1f, after %.1f)\n", gemm_ref, gemm_before,
              gemm_after);
  std::printf("ratio step/sgemm: %.2f (target >= 0.60)\n", gflops / gemm_ref);
  std::printf("memory held: params %.0f MB, grads %.0f MB, AdamW %.0f MB, activations %.0f MB; peak RSS %.0f MB\n",
              mem.params / 1e6, mem.grads / 1e6, mem.optimizer / 1e6, mem.activations / 1e6, rss_mb);
  std::printf(
      "{\"bench\":\"cpu_train_step\",\"machine\":\"%s\",\"threads\":%d,\"tokens_per_s\":%.1f,\"step_ms\":%.2f,"
      "\"gflops\":%.2f,\"sgemm_gflops\":%.2f,\"ratio\":%.4f,\"peak_rss_mb\":%.1f}\n",
      cpu_model().c_str(), max_threads(), tokens / median, median * 1e3, gflops, gemm_ref, gflops / gemm_ref, rss_mb);
  return 0;
}
