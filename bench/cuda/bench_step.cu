// The GPU benchmark behind `make bench-gpu` (bench/cuda/bench_gpu.sh runs it, then PyTorch on the same
// shapes, and prints the ratios). Everything is measured in the same run on the same device:
//   - the GEMM peak on random data (bf16 in, fp32 accumulate; and fp32, the step's precision today);
//   - attention alone, tensor-core kernels against the SIMT kernels (bf16, fwd and bwd, seq 2048), in TFLOP/s,
//     as a share of the 989 TFLOP/s dense bf16 peak of an H100/H200 and of the measured GEMM peak;
//   - each shape's training step through the product model (native/src/model.cpp) over the CUDA backend:
//     tokens/s, MFU against 989 and against the measured GEMM peak, and the attention share of the step
//     (the backend's attention fwd + bwd at the step's shape, times the layers, over the step time).
// The CUDA backend computes in fp32 today (its checking mode; the bf16 compute copy is not wired yet), so the
// step's MFU against 989 is bounded by the fp32 GEMM rate; the lines say which precision ran.
//   ringtune_cuda_bench [--config NAME] [--steps N] [--rows R] [--seq T]   one shape's step (default 124m)
//   ringtune_cuda_bench --suite [--steps N]    all of the above for the suite's shapes
//   ringtune_cuda_bench --smoke                the suite on tiny shapes, one iteration (runs on the emulator)
// Lines starting with RESULT are key=value records for bench_gpu.sh.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include "attention.cuh"
#include "bench_configs.h"
#include "cuda_backend.h"
#include "flash_attention.cuh"
#include "gemm.cuh"
#include "model.h"

using namespace rt;
using namespace rt::bench;

namespace {

constexpr double kPeakBf16Tflops = 989;  // H100 / H200 SXM dense bf16 tensor-core peak

struct Options {
  bool suite = false, smoke = false;
  std::string config = "124m";
  int steps = 5, rows = 0, seq = 0;
};

// Device memory freed on scope exit.
template <typename T>
struct DeviceArray {
  T* p = nullptr;
  explicit DeviceArray(size_t n) { CUDA_CHECK(cudaMalloc(&p, sizeof(T) * (n ? n : 1))); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { cudaFree(p); }
};

// Uniform in [-scale, scale] from a hash of the index: random data, so no GEMM runs on zeros.
template <typename T>
__global__ void fill_random_kernel(T* p, size_t n, uint64_t seed, float scale) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ seed;
  x ^= x >> 31, x *= 0xbf58476d1ce4e5b9ull, x ^= x >> 27, x *= 0x94d049bb133111ebull, x ^= x >> 33;
  p[i] = cuda::from_f<T>(((float)(x >> 40) / (float)(1 << 24) * 2.f - 1.f) * scale);
}
template <typename T>
void fill_random(T* p, size_t n, uint64_t seed, float scale = 1.f) {
  cuda::launch<fill_random_kernel<T>>(cuda::grid_for(n, 256), 256, 0, nullptr, p, n, seed, scale);
  CUDA_LAUNCH_CHECK("fill_random");
}

// The best of `reps` timed runs of fn (after one untimed), in milliseconds.
double best_ms(int reps, const std::function<void()>& fn) {
  fn();
  CUDA_CHECK(cudaDeviceSynchronize());
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    CUDA_CHECK(cudaDeviceSynchronize());
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}
double tflops(double flops, double ms) { return flops / (ms / 1e3) / 1e12; }

// C = A B^T on an n x n x n product of random matrices: the ceiling the step's GEMMs run against.
template <typename T>
double gemm_peak_tflops(cuda::Gemm& g, int n, int reps) {
  const size_t nn = (size_t)n * n;
  DeviceArray<T> a(nn), b(nn), c(nn);
  fill_random(a.p, nn, 1), fill_random(b.p, nn, 2);
  const double ms =
      best_ms(reps, [&] { cuda::gemm(g, false, true, n, n, n, 1.f, a.p, n, b.p, n, 0.f, c.p, n, nullptr); });
  return tflops(2.0 * n * n * (double)n, ms);
}

struct Peaks {
  double bf16, fp32;
};

// ---- attention alone ----
struct AttentionTimes {
  double flash_fwd, flash_bwd, simt_fwd, simt_bwd;  // ms
  double fwd_flops, bwd_flops;
};

// B rows of T tokens, `docs` equal documents per row (1: one causal segment per row); bf16.
AttentionTimes time_attention(const ModelConfig& c, int B, int T, int docs, int reps) {
  const cuda::AttnShape s{B, T, c.num_heads, c.num_kv_heads, c.head_dim};
  const size_t N = (size_t)B * T, QN = N * s.qdim(), KN = N * s.kvdim(), stats = (size_t)B * s.H * T;
  DeviceArray<cuda::bf16> q(QN), k(KN), v(KN), dout(QN), out(QN), dq(QN), dk(KN), dv(KN);
  DeviceArray<float> lse(stats), delta(stats);
  DeviceArray<int32_t> seg(N), start(N);
  fill_random(q.p, QN, 3, 1.5f), fill_random(k.p, KN, 4, 1.5f), fill_random(v.p, KN, 5);
  fill_random(dout.p, QN, 6);
  std::vector<int32_t> ids(N);
  double pairs = 0;
  const int doc = (T + docs - 1) / docs;
  for (int b = 0; b < B; b++)
    for (int d = 0; d * doc < T; d++) {
      const int len = std::min(doc, T - d * doc);
      pairs += (double)len * (len + 1) / 2;
      for (int t = 0; t < len; t++) ids[(size_t)b * T + d * doc + t] = b * docs + d;
    }
  CUDA_CHECK(cudaMemcpy(seg.p, ids.data(), sizeof(int32_t) * N, cudaMemcpyHostToDevice));
  cuda::segment_starts(start.p, seg.p, B, T, nullptr);
  AttentionTimes r{};
  r.fwd_flops = 4.0 * pairs * s.H * s.D;  // Q K^T and P V
  r.bwd_flops = 2.5 * r.fwd_flops;        // the usual count: recomputed Q K^T, dP, dV, dQ, dK
  r.flash_fwd = best_ms(reps, [&] { cuda::flash_attention_forward(out.p, lse.p, q.p, k.p, v.p, start.p, s, nullptr); });
  r.flash_bwd = best_ms(reps, [&] {
    cuda::flash_attention_backward(dq.p, dk.p, dv.p, delta.p, dout.p, q.p, k.p, v.p, out.p, lse.p, start.p, s, nullptr);
  });
  r.simt_fwd = best_ms(reps, [&] { cuda::simt_attention_forward(out.p, lse.p, q.p, k.p, v.p, start.p, s, nullptr); });
  r.simt_bwd = best_ms(reps, [&] {
    cuda::simt_attention_backward(dq.p, dk.p, dv.p, delta.p, dout.p, q.p, k.p, v.p, out.p, lse.p, start.p, s, nullptr);
  });
  return r;
}

void report_attention(const BenchShape& b, const Peaks& peak, int reps) {
  for (int docs : {1, 4}) {
    const ModelConfig& c = b.c;
    const AttentionTimes t = time_attention(c, b.rows, b.seq, docs, reps);
    const double ff = tflops(t.fwd_flops, t.flash_fwd), fb = tflops(t.bwd_flops, t.flash_bwd);
    const double all = tflops(t.fwd_flops + t.bwd_flops, t.flash_fwd + t.flash_bwd);
    const double simt = tflops(t.fwd_flops + t.bwd_flops, t.simt_fwd + t.simt_bwd);
    std::printf(
        "attention %s: %d x %d tokens, %d doc(s)/row, H %d KVH %d D %d, bf16\n"
        "  tensor cores: fwd %.3f ms (%.1f TFLOP/s), bwd %.3f ms (%.1f TFLOP/s); fwd+bwd %.1f TFLOP/s = %.1f%% of "
        "989, %.1f%% of the measured bf16 GEMM peak\n"
        "  SIMT: fwd %.3f ms, bwd %.3f ms (%.1f TFLOP/s); tensor cores / SIMT: %.2fx\n",
        b.name, b.rows, b.seq, docs, c.num_heads, c.num_kv_heads, c.head_dim, t.flash_fwd, ff, t.flash_bwd, fb, all,
        100 * all / kPeakBf16Tflops, 100 * all / peak.bf16, t.simt_fwd, t.simt_bwd, simt, all / simt);
    std::printf(
        "RESULT attention config=%s docs=%d flash_fwd_ms=%.4f flash_bwd_ms=%.4f flash_tflops=%.2f flash_pct_989=%.2f "
        "flash_pct_gemm=%.2f simt_tflops=%.2f flash_vs_simt=%.3f\n",
        b.name, docs, t.flash_fwd, t.flash_bwd, all, 100 * all / kPeakBf16Tflops, 100 * all / peak.bf16, simt,
        all / simt);
  }
}

// ---- the training step ----
struct Step {
  double ms, flops, attention_ms;
};

// The backend's own attention (fwd + bwd) at the step's shape: one layer's worth.
double time_backend_attention(const Backend<float>& ops, const BenchShape& b, int reps) {
  const ModelConfig& c = b.c;
  const AttentionShape s{b.rows, b.seq, c.num_heads, c.num_kv_heads, c.head_dim};
  const size_t N = (size_t)b.rows * b.seq, QN = N * s.qdim(), KN = N * s.kvdim();
  const Buffer<float> q = ops.zeros(QN), k = ops.zeros(KN), v = ops.zeros(KN), out = ops.zeros(QN),
                      dout = ops.zeros(QN), dq = ops.zeros(QN), dk = ops.zeros(KN), dv = ops.zeros(KN),
                      lse = ops.zeros((size_t)b.rows * s.H * b.seq);
  fill_random(q->data(), QN, 7, 1.5f), fill_random(k->data(), KN, 8, 1.5f), fill_random(v->data(), KN, 9);
  fill_random(dout->data(), QN, 10);
  std::vector<SegmentRun> runs;
  for (int r = 0; r < b.rows; r++) runs.push_back({r, 0, b.seq});
  AttentionScratch<float> scratch;
  return best_ms(reps, [&] {
    ops.attention_forward(out->data(), lse->data(), q->data(), k->data(), v->data(), runs, s, scratch);
    ops.attention_backward(dq->data(), dk->data(), dv->data(), dout->data(), q->data(), k->data(), v->data(),
                           out->data(), lse->data(), runs, s, scratch);
  });
}

Step time_step(const Backend<float>& ops, const BenchShape& b, int steps) {
  const ModelConfig& c = b.c;
  Model<float> m(c, ops);
  m.init_random(1, 0.02);
  constexpr int kLoraRank = 16;
  if (b.lora) {
    LoraConfig l;
    l.rank = kLoraRank, l.alpha = 32;
    l.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    m.enable_lora(l);
  }
  const size_t N = (size_t)b.rows * b.seq;
  std::vector<int32_t> ids(N), labels(N), pos(N), seg(N);
  uint64_t x = 12345;
  for (size_t n = 0; n < N; n++) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    ids[n] = (int32_t)((x >> 33) % c.vocab_size);
    pos[n] = (int32_t)(n % b.seq);
    seg[n] = (int32_t)(n / b.seq);
  }
  for (size_t n = 0; n < N; n++) labels[n] = (n + 1) % b.seq == 0 ? kIgnoreIndex : ids[n + 1];
  const Batch batch{b.rows, b.seq, ids.data(), labels.data(), pos.data(), seg.data()};
  AdamWOptions ao;
  ao.lr = 3e-4, ao.beta2 = 0.95, ao.weight_decay = 0.1, ao.max_grad_norm = 1.0;
  auto step = [&] {
    m.zero_grad();
    m.forward_backward(batch, StepOptions{});
    m.adamw_step(ao);
    CUDA_CHECK(cudaDeviceSynchronize());
  };
  step();  // warm-up: activations, GEMM plans
  step();  // and the step's CUDA graphs, captured and instantiated from the second step on (step_graph.h)
  std::vector<double> times;
  for (int s = 0; s < steps; s++) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  // Full training: 6 flops per weight and token (forward, input grads, weight grads). LoRA: the frozen base
  // needs no weight grads (4), the adapters all three (6). Attention: Q K^T and P V forward, twice that back.
  const double attn = 3.0 * 4.0 * c.num_layers * causal_pairs(b.rows, b.seq) * c.num_heads * c.head_dim;
  const double weights =
      b.lora ? 4.0 * N * matmul_params(c) + 6.0 * N * lora_params(c, kLoraRank) : 6.0 * N * matmul_params(c);
  return {times[times.size() / 2], weights + attn, 0};
}

void report_step(const Backend<float>& ops, const BenchShape& b, const Peaks& peak, int steps, int reps) {
  Step s = time_step(ops, b, steps);
  s.attention_ms = b.c.num_layers * time_backend_attention(ops, b, reps);
  const double tokens = (double)b.rows * b.seq, tps = tokens / (s.ms / 1e3), got = tflops(s.flops, s.ms);
  std::printf(
      "step %s%s: %d x %d tokens, fp32 backend (%s)\n"
      "  %.2f ms (median of %d), %.0f tokens/s, %.2f TFLOP/s: MFU %.2f%% of 989, %.1f%% of the measured fp32 GEMM "
      "peak, %.2f%% of the measured bf16 GEMM peak\n"
      "  attention (the backend's fwd + bwd at this shape x %d layers): %.2f ms = %.1f%% of the step\n",
      b.name, b.lora ? " (LoRA r16, base frozen)" : "", b.rows, b.seq, ops.name(), s.ms, steps, tps, got,
      100 * got / kPeakBf16Tflops, 100 * got / peak.fp32, 100 * got / peak.bf16, b.c.num_layers, s.attention_ms,
      100 * s.attention_ms / s.ms);
  std::printf(
      "RESULT step config=%s tokens_per_s=%.1f step_ms=%.3f tflops=%.3f mfu_989_pct=%.3f mfu_gemm_fp32_pct=%.2f "
      "mfu_gemm_bf16_pct=%.2f attention_share_pct=%.2f\n",
      b.name, tps, s.ms, got, 100 * got / kPeakBf16Tflops, 100 * got / peak.fp32, 100 * got / peak.bf16,
      100 * s.attention_ms / s.ms);
}

void print_machine() {
  int dev = 0, driver = 0, runtime = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp p;
  CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  std::printf("machine: %s, sm_%d%d, %d SMs, %.1f GiB, driver %d, runtime %d\n", p.name, p.major, p.minor,
              p.multiProcessorCount, p.totalGlobalMem / 1073741824.0, driver, runtime);
  std::printf("RESULT machine name=\"%s\" sm=%d%d\n", p.name, p.major, p.minor);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--suite") o.suite = true;
    else if (a == "--smoke") o.smoke = true;
    else if (a == "--config" && has_value) o.config = argv[++i];
    else if (a == "--steps" && has_value) o.steps = std::atoi(argv[++i]);
    else if (a == "--rows" && has_value) o.rows = std::atoi(argv[++i]);
    else if (a == "--seq" && has_value) o.seq = std::atoi(argv[++i]);
    else fail("ringtune_cuda_bench", "unknown or incomplete argument '", a, "'");
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    print_machine();
    const auto backend = cuda::make_cuda_backend(0);
    const auto gemm = cuda::make_gemm();
    const int reps = o.smoke ? 1 : 5, steps = o.smoke ? 1 : o.steps;
    const int n16 = o.smoke ? 64 : 8192, n32 = o.smoke ? 64 : 4096;
    const Peaks peak{gemm_peak_tflops<cuda::bf16>(*gemm, n16, reps), gemm_peak_tflops<float>(*gemm, n32, reps)};
    std::printf("GEMM peak on random data (%s): bf16 %d^3 %.1f TFLOP/s (%.1f%% of 989), fp32 %d^3 %.1f TFLOP/s\n",
                gemm->name(), n16, peak.bf16, 100 * peak.bf16 / kPeakBf16Tflops, n32, peak.fp32);
    std::printf("RESULT gemm bf16_tflops=%.2f fp32_tflops=%.2f\n", peak.bf16, peak.fp32);
    if (o.suite || o.smoke) {
      const std::vector<BenchShape> shapes = o.smoke ? smoke_shapes() : suite_shapes();
      for (const BenchShape& b : shapes) report_attention(b, peak, reps);
      for (const BenchShape& b : shapes) {
        try {  // a shape that does not fit (or is refused) must not hide the others
          report_step(*backend, b, peak, steps, reps);
        } catch (const std::exception& e) {
          std::printf("step %s: failed: %s\nRESULT step config=%s failed=1\n", b.name, e.what(), b.name);
        }
      }
      return 0;
    }
    const std::vector<BenchShape> all = suite_shapes();
    const BenchShape* found = find_shape(all, o.config);
    if (!found)
      fail("ringtune_cuda_bench", "unknown --config '", o.config, "' (124m, qwen2.5-0.5b, qwen2.5-1.5b-lora)");
    BenchShape b = *found;
    if (o.rows > 0) b.rows = o.rows;
    if (o.seq > 0) b.seq = o.seq;
    report_step(*backend, b, peak, steps, reps);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
