// One bf16 training step of the 124M-class model on the GPU, assembled from the CUDA backend's ops:
// vocab 32000, hidden 768, intermediate 2048, 12 layers, 12 heads, 4 KV heads (head dim 64), 16 rows of
// 1024 tokens (16k tokens). Prints tokens/s and model FLOP utilisation against the bf16 GEMM peak measured by
// the same binary in the same run, plus the attention kernels' share.
//   ringtune_cuda_bench [--steps N] [--rows R] [--seq T] [--gemm own|lt]
// Simplifications next to the model code: no biases, untied head, AdamW with weight decay on every tensor
// (norm weights included), one segment per row.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>
#include "adamw.cuh"
#include "add.cuh"
#include "attention.cuh"
#include "cross_entropy.cuh"
#include "embedding.cuh"
#include "gemm.cuh"
#include "grad_norm.cuh"
#include "rmsnorm.cuh"
#include "rope.cuh"
#include "swiglu.cuh"

using namespace rt::cuda;

namespace {

struct Cfg {
  int V = 32000, C = 768, I = 2048, L = 12, H = 12, KVH = 4, D = 64;
  int QD() const { return H * D; }
  int KD() const { return KVH * D; }
};

__global__ void init_kernel(float* p, size_t n, float std, uint64_t seed) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  uint64_t x = seed ^ (i * 0x9e3779b97f4a7c15ULL);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  x ^= x >> 31;
  const float u = ((x >> 40) + 0.5f) / 16777216.f;  // (0, 1)
  p[i] = std * 1.7320508f * (2.f * u - 1.f);        // uniform with the given std
}
__global__ void fill_kernel(float* p, size_t n, float v) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) p[i] = v;
}

template <typename T>
T* dalloc(size_t n) {
  T* p;
  CUDA_CHECK(cudaMalloc(&p, sizeof(T) * n));
  return p;
}

struct Layer {
  size_t ln1, wq, wk, wv, wo, ln2, wg, wu, wd;  // offsets in the flat parameter buffer
};
struct LayerAct {
  bf16 *res_in, *ln1, *q, *k, *v, *att, *res_mid, *ln2, *gate, *up, *h;
  float *rstd1, *rstd2, *lse;
};

struct Model {
  Cfg c;
  int B, T;
  size_t N, P = 0, embed, head, final_norm;
  std::vector<Layer> layers;
  float *p32, *g, *m, *v;  // flat: master weights, grads, moments
  bf16* pb;                // flat: bf16 compute copy
  std::vector<LayerAct> acts;
  bf16 *res_out, *lnf, *logits, *dres, *dln, *dtmp, *dq, *dk, *dv, *datt, *dgate, *dup;
  float *rstdf, *losses, *delta, *clip, *norm;
  double *loss_sum, *sumsq;
  int32_t *ids, *labels, *pos, *seg, *seg_start;
  double* inv_freq;
  int head_chunk = 4096;
  Gemm* gemm;

  size_t take(size_t n) {
    const size_t o = P;
    P += (n + 63) / 64 * 64;  // 256-byte aligned tensors
    return o;
  }

  Model(const Cfg& cfg, int rows, int seq, Gemm* gm) : c(cfg), B(rows), T(seq), N((size_t)rows * seq), gemm(gm) {
    embed = take((size_t)c.V * c.C);
    for (int l = 0; l < c.L; l++) {
      Layer ly;
      ly.ln1 = take(c.C), ly.wq = take((size_t)c.QD() * c.C), ly.wk = take((size_t)c.KD() * c.C);
      ly.wv = take((size_t)c.KD() * c.C), ly.wo = take((size_t)c.C * c.QD()), ly.ln2 = take(c.C);
      ly.wg = take((size_t)c.I * c.C), ly.wu = take((size_t)c.I * c.C), ly.wd = take((size_t)c.C * c.I);
      layers.push_back(ly);
    }
    final_norm = take(c.C);
    head = take((size_t)c.V * c.C);
    p32 = dalloc<float>(P), g = dalloc<float>(P), m = dalloc<float>(P), v = dalloc<float>(P), pb = dalloc<bf16>(P);
    init_kernel<<<grid(P), 256>>>(p32, P, 0.02f, 1);
    auto ones = [&](size_t off) { fill_kernel<<<grid(c.C), 256>>>(p32 + off, c.C, 1.f); };
    for (const Layer& ly : layers) ones(ly.ln1), ones(ly.ln2);
    ones(final_norm);
    CUDA_LAUNCH_CHECK("init");
    CUDA_CHECK(cudaMemset(m, 0, sizeof(float) * P));
    CUDA_CHECK(cudaMemset(v, 0, sizeof(float) * P));
    to_bf16(pb, p32, P, 0);
    const size_t NC = N * c.C, NI = N * c.I;
    for (int l = 0; l < c.L; l++) {
      LayerAct a;
      a.res_in = dalloc<bf16>(NC), a.ln1 = dalloc<bf16>(NC), a.q = dalloc<bf16>(N * c.QD()),
      a.k = dalloc<bf16>(N * c.KD());
      a.v = dalloc<bf16>(N * c.KD()), a.att = dalloc<bf16>(N * c.QD()), a.res_mid = dalloc<bf16>(NC),
      a.ln2 = dalloc<bf16>(NC);
      a.gate = dalloc<bf16>(NI), a.up = dalloc<bf16>(NI), a.h = dalloc<bf16>(NI);
      a.rstd1 = dalloc<float>(N), a.rstd2 = dalloc<float>(N), a.lse = dalloc<float>((size_t)B * c.H * T);
      acts.push_back(a);
    }
    res_out = dalloc<bf16>(NC), lnf = dalloc<bf16>(NC), logits = dalloc<bf16>((size_t)head_chunk * c.V);
    dres = dalloc<bf16>(NC), dln = dalloc<bf16>(NC), dtmp = dalloc<bf16>(NC), dq = dalloc<bf16>(N * c.QD());
    dk = dalloc<bf16>(N * c.KD()), dv = dalloc<bf16>(N * c.KD()), datt = dalloc<bf16>(N * c.QD());
    dgate = dalloc<bf16>(NI), dup = dalloc<bf16>(NI);
    rstdf = dalloc<float>(N), losses = dalloc<float>(N), delta = dalloc<float>((size_t)B * c.H * T);
    clip = dalloc<float>(1), norm = dalloc<float>(1), loss_sum = dalloc<double>(1), sumsq = dalloc<double>(1);
    ids = dalloc<int32_t>(N), labels = dalloc<int32_t>(N), pos = dalloc<int32_t>(N), seg = dalloc<int32_t>(N);
    seg_start = dalloc<int32_t>(N);
    std::vector<int32_t> h_ids(N), h_labels(N), h_pos(N), h_seg(N);
    uint64_t x = 12345;
    for (size_t n = 0; n < N; n++) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      h_ids[n] = (int32_t)((x >> 33) % c.V);
      h_pos[n] = (int32_t)(n % T);
      h_seg[n] = (int32_t)(n / T);
    }
    for (size_t n = 0; n < N; n++) h_labels[n] = (n + 1) % T == 0 ? -100 : h_ids[n + 1];
    CUDA_CHECK(cudaMemcpy(ids, h_ids.data(), 4 * N, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(labels, h_labels.data(), 4 * N, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(pos, h_pos.data(), 4 * N, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(seg, h_seg.data(), 4 * N, cudaMemcpyHostToDevice));
    std::vector<double> inv(c.D / 2);
    for (int j = 0; j < c.D / 2; j++) inv[j] = 1.0 / std::pow(10000.0, 2.0 * j / c.D);
    inv_freq = dalloc<double>(inv.size());
    CUDA_CHECK(cudaMemcpy(inv_freq, inv.data(), sizeof(double) * inv.size(), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaDeviceSynchronize());
  }
  static unsigned grid(size_t n) { return (unsigned)((n + 255) / 256); }

  // out[N, O] = inp[N, I] @ W[O, I]^T
  void linear(bf16* out, const bf16* inp, size_t w, int In, int Out, float beta = 0.f) {
    rt::cuda::gemm(*gemm, false, true, (int)N, Out, In, 1.f, inp, In, pb + w, In, beta, out, Out, 0);
  }
  // dinp (= or += with beta) dout @ W;  dW += dout^T @ inp
  void linear_back(bf16* dinp, float dinp_beta, const bf16* dout, const bf16* inp, size_t w, int In, int Out) {
    rt::cuda::gemm(*gemm, false, false, (int)N, In, Out, 1.f, dout, Out, pb + w, In, dinp_beta, dinp, In, 0);
    rt::cuda::gemm(*gemm, true, false, Out, In, (int)N, 1.f, dout, Out, inp, In, 1.f, g + w, In, 0);
  }

  void step(int targets) {
    const int n = (int)N, C = c.C, I = c.I;
    const size_t NC = N * C, NI = N * I;
    const AttnShape as{B, T, c.H, c.KVH, c.D};
    CUDA_CHECK(cudaMemsetAsync(g, 0, sizeof(float) * P, 0));
    CUDA_CHECK(cudaMemsetAsync(loss_sum, 0, sizeof(double), 0));
    CUDA_CHECK(cudaMemsetAsync(sumsq, 0, sizeof(double), 0));
    segment_starts(seg_start, seg, B, T, 0);
    embedding_forward(acts[0].res_in, ids, pb + embed, n, C, c.V, (int*)nullptr, 0);
    for (int l = 0; l < c.L; l++) {
      const Layer& w = layers[l];
      LayerAct& a = acts[l];
      bf16* out = l + 1 < c.L ? acts[l + 1].res_in : res_out;
      rmsnorm_forward(a.ln1, a.rstd1, a.res_in, pb + w.ln1, n, C, 1e-5, 0);
      linear(a.q, a.ln1, w.wq, C, c.QD());
      linear(a.k, a.ln1, w.wk, C, c.KD());
      linear(a.v, a.ln1, w.wv, C, c.KD());
      rope_forward(a.q, pos, inv_freq, n, c.H, c.D, 0);
      rope_forward(a.k, pos, inv_freq, n, c.KVH, c.D, 0);
      attention_forward(a.att, a.lse, a.q, a.k, a.v, seg_start, as, 0);
      linear(dtmp, a.att, w.wo, c.QD(), C);
      add(a.res_mid, a.res_in, dtmp, NC, 0);
      rmsnorm_forward(a.ln2, a.rstd2, a.res_mid, pb + w.ln2, n, C, 1e-5, 0);
      linear(a.gate, a.ln2, w.wg, C, I);
      linear(a.up, a.ln2, w.wu, C, I);
      swiglu_forward(a.h, a.gate, a.up, NI, 0);
      linear(dtmp, a.h, w.wd, I, C);
      add(out, a.res_mid, dtmp, NC, 0);
    }
    rmsnorm_forward(lnf, rstdf, res_out, pb + final_norm, n, C, 1e-5, 0);
    // LM head + cross entropy in chunks of positions: only (chunk, V) logits exist at a time
    for (int c0 = 0; c0 < n; c0 += head_chunk) {
      const int rows = std::min(head_chunk, n - c0);
      rt::cuda::gemm(*gemm, false, true, rows, c.V, C, 1.f, lnf + (size_t)c0 * C, C, pb + head, C, 0.f, logits, c.V, 0);
      cross_entropy_forward_backward(losses + c0, logits, logits, labels + c0, rows, c.V, 1.f / targets, loss_sum,
                                     (int*)nullptr, 0);
      rt::cuda::gemm(*gemm, false, false, rows, C, c.V, 1.f, logits, c.V, pb + head, C, 0.f, dln + (size_t)c0 * C, C,
                     0);
      rt::cuda::gemm(*gemm, true, false, c.V, C, rows, 1.f, logits, c.V, lnf + (size_t)c0 * C, C, 1.f, g + head, C, 0);
    }
    rmsnorm_backward(dres, g + final_norm, dln, res_out, pb + final_norm, rstdf, n, C, 0);
    for (int l = c.L - 1; l >= 0; l--) {
      const Layer& w = layers[l];
      LayerAct& a = acts[l];
      linear_back(dgate, 0.f, dres, a.h, w.wd, I, C);  // d(h) into dgate
      swiglu_backward(dgate, dup, dgate, a.gate, a.up, NI, 0);
      linear_back(dln, 0.f, dgate, a.ln2, w.wg, C, I);
      linear_back(dln, 1.f, dup, a.ln2, w.wu, C, I);
      rmsnorm_backward(dtmp, g + w.ln2, dln, a.res_mid, pb + w.ln2, a.rstd2, n, C, 0);
      add_inplace(dres, dtmp, NC, 0);
      linear_back(datt, 0.f, dres, a.att, w.wo, c.QD(), C);
      attention_backward(dq, dk, dv, delta, datt, a.q, a.k, a.v, a.att, a.lse, seg_start, as, 0);
      rope_backward(dq, pos, inv_freq, n, c.H, c.D, 0);
      rope_backward(dk, pos, inv_freq, n, c.KVH, c.D, 0);
      linear_back(dln, 0.f, dq, a.ln1, w.wq, C, c.QD());
      linear_back(dln, 1.f, dk, a.ln1, w.wk, C, c.KD());
      linear_back(dln, 1.f, dv, a.ln1, w.wv, C, c.KD());
      rmsnorm_backward(dtmp, g + w.ln1, dln, a.res_in, pb + w.ln1, a.rstd1, n, C, 0);
      add_inplace(dres, dtmp, NC, 0);
    }
    embedding_backward(g + embed, dres, ids, n, C, c.V, 0);
    sum_of_squares(sumsq, g, P, 0);
    grad_clip_factor(clip, norm, sumsq, 1.0, 0);
    static int64_t t = 0;
    t++;
    rt::AdamWStep s{3e-4, 0.9, 0.95, 1e-8, 0.1, 1 - std::pow(0.9, (double)t), 1 - std::pow(0.95, (double)t), 1.0};
    adamw_update(p32, pb, g, m, v, P, s, true, clip, 0);
  }
};

double bf16_gemm_peak_tflops(Gemm& gemm) {
  const int n = 8192;
  bf16* a = dalloc<bf16>((size_t)n * n);
  bf16* b = dalloc<bf16>((size_t)n * n);
  bf16* c = dalloc<bf16>((size_t)n * n);
  CUDA_CHECK(cudaMemset(a, 0, sizeof(bf16) * n * n));
  CUDA_CHECK(cudaMemset(b, 0, sizeof(bf16) * n * n));
  cudaEvent_t e0, e1;
  CUDA_CHECK(cudaEventCreate(&e0));
  CUDA_CHECK(cudaEventCreate(&e1));
  rt::cuda::gemm(gemm, false, true, n, n, n, 1.f, a, n, b, n, 0.f, c, n, 0);
  float best = 1e30f;
  for (int r = 0; r < 5; r++) {
    CUDA_CHECK(cudaEventRecord(e0));
    rt::cuda::gemm(gemm, false, true, n, n, n, 1.f, a, n, b, n, 0.f, c, n, 0);
    CUDA_CHECK(cudaEventRecord(e1));
    CUDA_CHECK(cudaEventSynchronize(e1));
    float ms;
    CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    best = std::min(best, ms);
  }
  cudaFree(a), cudaFree(b), cudaFree(c);
  return 2.0 * n * n * (double)n / (best / 1e3) / 1e12;
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 5, rows = 16, seq = 1024;
  std::string which = "auto";
  for (int i = 1; i + 1 < argc; i++) {
    if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--rows")) rows = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--seq")) seq = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--gemm")) which = argv[++i];
  }
  try {
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::unique_ptr<Gemm> gemm;
    std::string why;
    if (which == "own") gemm = make_own_gemm();
    else if (which == "lt") gemm = make_cublaslt_gemm(&why);
    else gemm = make_gemm();
    if (!gemm) {
      std::fprintf(stderr, "cuBLASLt not loaded: %s\n", why.c_str());
      return 1;
    }
    std::printf("device: %s; gemm: %s\n", prop.name, gemm->name());
    const double peak = bf16_gemm_peak_tflops(*gemm);
    std::printf("bf16 GEMM peak (8192^3, %s): %.1f TFLOP/s\n", gemm->name(), peak);
    Cfg c;
    Model m(c, rows, seq, gemm.get());
    const int targets = rows * (seq - 1);
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    // attention alone, one layer, forward and backward
    {
      const AttnShape as{rows, seq, c.H, c.KVH, c.D};
      segment_starts(m.seg_start, m.seg, rows, seq, 0);
      LayerAct& a = m.acts[0];
      attention_forward(a.att, a.lse, a.q, a.k, a.v, m.seg_start, as, 0);
      float fwd, bwd;
      CUDA_CHECK(cudaEventRecord(e0));
      attention_forward(a.att, a.lse, a.q, a.k, a.v, m.seg_start, as, 0);
      CUDA_CHECK(cudaEventRecord(e1));
      CUDA_CHECK(cudaEventSynchronize(e1));
      CUDA_CHECK(cudaEventElapsedTime(&fwd, e0, e1));
      CUDA_CHECK(cudaEventRecord(e0));
      attention_backward(m.dq, m.dk, m.dv, m.delta, a.att, a.q, a.k, a.v, a.att, a.lse, m.seg_start, as, 0);
      CUDA_CHECK(cudaEventRecord(e1));
      CUDA_CHECK(cudaEventSynchronize(e1));
      CUDA_CHECK(cudaEventElapsedTime(&bwd, e0, e1));
      const double f = 4.0 * rows * (double)seq * seq / 2 * c.H * c.D;  // causal
      std::printf("attention, one layer: forward %.2f ms (%.1f TFLOP/s), backward %.2f ms (%.1f TFLOP/s)\n", fwd,
                  f / (fwd / 1e3) / 1e12, bwd, 2.5 * f / (bwd / 1e3) / 1e12);
    }
    m.step(targets);  // warm-up: GEMM plans, caches
    m.step(targets);
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> times;
    double loss = 0;
    for (int s = 0; s < steps; s++) {
      CUDA_CHECK(cudaEventRecord(e0));
      m.step(targets);
      CUDA_CHECK(cudaEventRecord(e1));
      CUDA_CHECK(cudaEventSynchronize(e1));
      float ms;
      CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
      times.push_back(ms);
      CUDA_CHECK(cudaMemcpy(&loss, m.loss_sum, sizeof(double), cudaMemcpyDeviceToHost));
    }
    std::sort(times.begin(), times.end());
    const double ms = times[times.size() / 2];
    const double N = (double)rows * seq;
    const double matmul_params =
        (double)c.L * ((double)c.C * c.QD() * 2 + 2.0 * c.C * c.KD() + 3.0 * c.C * c.I) + (double)c.V * c.C;
    const double attn = 3.0 * c.L * 4.0 * rows * (double)seq * seq / 2 * c.H * c.D;  // causal, fwd + 2x bwd
    const double flops = 6.0 * N * matmul_params + attn;
    const double achieved = flops / (ms / 1e3) / 1e12;
    float norm;
    CUDA_CHECK(cudaMemcpy(&norm, m.norm, sizeof(float), cudaMemcpyDeviceToHost));
    std::printf("params %.1fM (matmul %.1fM); step %.2f ms (median of %d); %.0f tokens/s\n", m.P / 1e6,
                matmul_params / 1e6, ms, steps, N / (ms / 1e3));
    std::printf(
        "model FLOPs/step %.2f T (attention %.2f T, causal); achieved %.1f TFLOP/s; MFU vs measured bf16 GEMM peak: "
        "%.1f%%\n",
        flops / 1e12, attn / 1e12, achieved, 100 * achieved / peak);
    std::printf("last loss %.4f (mean over targets), grad norm %.3f\n", loss / targets, norm);
    std::printf("RESULT tokens_per_s=%.0f step_ms=%.2f mfu_pct=%.1f gemm_peak_tflops=%.1f\n", N / (ms / 1e3), ms,
                100 * achieved / peak, peak);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
