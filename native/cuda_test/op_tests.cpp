// Every CUDA op against the CPU backend (native/src/ops), forward and backward, in fp32 and bf16. Inputs
// are random; in bf16 the CPU reference gets the inputs rounded to bf16, so the differences measure the
// kernel's arithmetic and output rounding only. Tolerances are abs + rel * |ref|, stated per op and precision.
#include <cmath>
#include <sstream>
#include <vector>
#include "adamw.cuh"
#include "add.cuh"
#include "attention.cuh"
#include "cached_attention.cuh"
#include "config.h"
#include "cross_entropy.cuh"
#include "device_buffer.h"
#include "embedding.cuh"
#include "grad_norm.cuh"
#include "ops/adamw.h"
#include "ops/attention.h"
#include "ops/cached_attention.h"
#include "ops/cross_entropy.h"
#include "ops/embedding.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"
#include "rmsnorm.cuh"
#include "rope.cuh"
#include "swiglu.cuh"
#include "test_util.h"

using namespace rt;
using namespace rt::test;
using namespace rt::cuda::test;
namespace cu = rt::cuda;
using cu::bf16;

static std::vector<float> randv(size_t n, uint64_t seed, double scale = 1.0) {
  std::vector<float> v(n);
  fill_uniform(v, seed, scale);
  return v;
}

// Compares, notes the max diff under the test's name, throws past the tolerance.
template <typename G>
static void compare(const std::string& what, const std::vector<G>& got, const std::vector<float>& want, Tol t) {
  const std::vector<float> g = to_floats(got);
  CHECK(g.size() == want.size(), what << ": size " << g.size() << " vs " << want.size());
  const double d = expect_close(what, g.data(), want.data(), g.size(), t.abs, t.rel);
  std::ostringstream s;
  s << what << ": max diff " << d << " (tolerance " << t.abs << " + " << t.rel << " * |ref|)";
  note(s.str());
}
static void compare(const std::string& what, const std::vector<float>& got, const std::vector<float>& want, Tol t) {
  compare<float>(what, got, want, t);
}

template <typename T>
static void embedding_case() {
  const int N = 300, C = 96, V = 50;
  std::vector<int32_t> ids(N);
  for (int n = 0; n < N; n++) ids[n] = (int32_t)(uniform01(5, 1, n) * V);  // many repeats
  std::vector<float> wte = randv((size_t)V * C, 1), dout = randv((size_t)N * C, 2);
  DeviceBuffer<T> d_wte(to_device_type<T>(wte)), d_out((size_t)N * C), d_dout(to_device_type<T>(dout));
  DeviceBuffer<int32_t> d_ids(ids), d_bad(std::vector<int32_t>{cu::kNoBadPosition});
  std::vector<float> dwte0 = randv((size_t)V * C, 3), out((size_t)N * C), dwte = dwte0;
  DeviceBuffer<float> d_dwte(dwte0);
  cu::embedding_forward(d_out.ptr, d_ids.ptr, d_wte.ptr, N, C, V, d_bad.ptr, 0);
  cu::embedding_backward(d_dwte.ptr, d_dout.ptr, d_ids.ptr, N, C, V, 0);
  embedding_forward(out.data(), ids.data(), wte.data(), N, C, V);
  embedding_backward(dwte.data(), dout.data(), ids.data(), N, C);
  const std::string p = precision_name<T>();
  compare(p + " embedding out", d_out.download(), out, {0, 0});
  compare(p + " embedding dwte (+=)", d_dwte.download(), dwte, {1e-5, 1e-5});
  CHECK(d_bad.download()[0] == cu::kNoBadPosition, "no id was out of range");
  ids[7] = V;  // out of range: reported, not a crash; the first of several, as the CPU reports
  ids[N - 1] = -1;
  d_ids.upload(ids);
  cu::embedding_forward(d_out.ptr, d_ids.ptr, d_wte.ptr, N, C, V, d_bad.ptr, 0);
  CHECK(d_bad.download()[0] == 7, "position of the first bad id: " << d_bad.download()[0]);
}
TEST(cuda_embedding_fp32) { embedding_case<float>(); }
TEST(cuda_embedding_bf16) { embedding_case<bf16>(); }

template <typename T>
static void rmsnorm_case() {
  const int N = 77, C = 200;
  std::vector<float> x = randv((size_t)N * C, 4, 2.0), w = randv(C, 5), dy = randv((size_t)N * C, 6);
  for (float& v : w) v += 1.0f;
  DeviceBuffer<T> d_x(to_device_type<T>(x)), d_w(to_device_type<T>(w)), d_dy(to_device_type<T>(dy));
  DeviceBuffer<T> d_out((size_t)N * C), d_dx((size_t)N * C);
  std::vector<float> dw = randv(C, 7), out((size_t)N * C), rstd(N), dx((size_t)N * C);
  DeviceBuffer<float> d_rstd(N), d_dw(dw);
  cu::rmsnorm_forward(d_out.ptr, d_rstd.ptr, d_x.ptr, d_w.ptr, N, C, 1e-5, 0);
  cu::rmsnorm_backward(d_dx.ptr, d_dw.ptr, d_dy.ptr, d_x.ptr, d_w.ptr, d_rstd.ptr, N, C, 0);
  rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5);
  rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), N, C);
  const std::string p = precision_name<T>();
  compare(p + " rmsnorm rstd", d_rstd.download(), rstd, {1e-6, 1e-5});
  compare(p + " rmsnorm out", d_out.download(), out, pick<T>({1e-6, 1e-5}, {1e-2, 8e-3}));
  compare(p + " rmsnorm dinp", d_dx.download(), dx, pick<T>({1e-5, 1e-4}, {2e-2, 1e-2}));
  compare(p + " rmsnorm dw (+=)", d_dw.download(), dw, pick<T>({1e-4, 1e-4}, {1e-3, 1e-3}));
}
TEST(cuda_rmsnorm_fp32) { rmsnorm_case<float>(); }
TEST(cuda_rmsnorm_bf16) { rmsnorm_case<bf16>(); }

template <typename T>
static void rope_case() {
  const int N = 130, heads = 3, D = 64;
  ModelConfig cfg;
  cfg.head_dim = D;
  cfg.rope_theta = 10000;
  const std::vector<double> inv = rope_inv_freq(cfg);
  std::vector<int32_t> pos(N);
  for (int n = 0; n < N; n++) pos[n] = (n * 37) % 4000;  // long positions: the angle must stay accurate
  std::vector<float> x = randv((size_t)N * heads * D, 8), dy = randv((size_t)N * heads * D, 9);
  DeviceBuffer<T> d_x(to_device_type<T>(x)), d_dy(to_device_type<T>(dy));
  DeviceBuffer<int32_t> d_pos(pos);
  DeviceBuffer<double> d_inv(inv);
  cu::rope_forward(d_x.ptr, d_pos.ptr, d_inv.ptr, N, heads, D, 0);
  cu::rope_backward(d_dy.ptr, d_pos.ptr, d_inv.ptr, N, heads, D, 0);
  rope_forward(x.data(), pos.data(), inv.data(), N, heads, D);
  rope_backward(dy.data(), pos.data(), inv.data(), N, heads, D);
  const std::string p = precision_name<T>();
  compare(p + " rope forward", d_x.download(), x, pick<T>({1e-6, 1e-5}, {1e-2, 8e-3}));
  compare(p + " rope backward", d_dy.download(), dy, pick<T>({1e-6, 1e-5}, {1e-2, 8e-3}));
}
TEST(cuda_rope_fp32) { rope_case<float>(); }
TEST(cuda_rope_bf16) { rope_case<bf16>(); }

template <typename T>
static void swiglu_add_case() {
  const size_t n = 10007;
  std::vector<float> g = randv(n, 10, 4.0), u = randv(n, 11, 2.0), dh = randv(n, 12);
  DeviceBuffer<T> d_g(to_device_type<T>(g)), d_u(to_device_type<T>(u)), d_dh(to_device_type<T>(dh));
  DeviceBuffer<T> d_h(n), d_dg(n), d_du(n), d_sum(n);
  cu::swiglu_forward(d_h.ptr, d_g.ptr, d_u.ptr, n, 0);
  cu::swiglu_backward(d_dg.ptr, d_du.ptr, d_dh.ptr, d_g.ptr, d_u.ptr, n, 0);
  cu::add(d_sum.ptr, d_g.ptr, d_u.ptr, n, 0);
  cu::add_inplace(d_sum.ptr, d_dh.ptr, n, 0);
  std::vector<float> h(n), dg(n), du(n), sum(n);
  swiglu_forward(h.data(), g.data(), u.data(), n);
  swiglu_backward(dg.data(), du.data(), dh.data(), g.data(), u.data(), n);
  // the reference sum rounds where the device does: after each add
  for (size_t i = 0; i < n; i++) {
    std::vector<float> t{g[i] + u[i]};
    to_device_type<T>(t);
    sum[i] = t[0] + dh[i];
  }
  const std::string p = precision_name<T>();
  compare(p + " swiglu h", d_h.download(), h, pick<T>({1e-6, 1e-5}, {1e-2, 8e-3}));
  compare(p + " swiglu dgate", d_dg.download(), dg, pick<T>({1e-6, 1e-5}, {1e-2, 8e-3}));
  compare(p + " swiglu dup", d_du.download(), du, pick<T>({1e-6, 1e-5}, {1e-2, 8e-3}));
  compare(p + " add + add_inplace", d_sum.download(), sum, pick<T>({1e-6, 1e-6}, {1e-2, 8e-3}));
}
TEST(cuda_swiglu_add_fp32) { swiglu_add_case<float>(); }
TEST(cuda_swiglu_add_bf16) { swiglu_add_case<bf16>(); }

template <typename T>
static void cross_entropy_case() {
  const int N = 40, V = 5003;
  std::vector<float> z = randv((size_t)N * V, 13, 6.0);
  std::vector<int32_t> labels(N);
  for (int n = 0; n < N; n++) labels[n] = n % 7 == 3 ? kIgnoreIndex : (int32_t)(uniform01(6, 2, n) * V);
  const double scale = 1.0 / 33;
  DeviceBuffer<T> d_z(to_device_type<T>(z));
  DeviceBuffer<int32_t> d_labels(labels), d_bad(std::vector<int32_t>{cu::kNoBadPosition});
  DeviceBuffer<float> d_losses(N);
  DeviceBuffer<double> d_sum(1);
  // in place: dlogits aliases logits, as the LM head uses it
  cu::cross_entropy_forward_backward(d_losses.ptr, d_z.ptr, d_z.ptr, d_labels.ptr, N, V, (float)scale, d_sum.ptr,
                                     d_bad.ptr, 0);
  std::vector<float> losses(N), dz((size_t)N * V);
  const LossSum ls = cross_entropy_forward_backward(losses.data(), dz.data(), z.data(), labels.data(), N, V, scale);
  const std::string p = precision_name<T>();
  compare(p + " cross_entropy losses", d_losses.download(), losses, {2e-5, 2e-5});
  compare(p + " cross_entropy dlogits (in place)", d_z.download(), dz, pick<T>({1e-8, 1e-4}, {1e-6, 8e-3}));
  const double sum = d_sum.download()[0];
  CHECK(std::fabs(sum - ls.sum) <= 1e-4 * std::fabs(ls.sum) + 1e-4, "loss sum " << sum << " vs " << ls.sum);
  CHECK(d_bad.download()[0] == cu::kNoBadPosition);
}
TEST(cuda_cross_entropy_fp32) { cross_entropy_case<float>(); }
TEST(cuda_cross_entropy_bf16) { cross_entropy_case<bf16>(); }

TEST(cuda_adamw_and_grad_norm) {
  const size_t n = 100003;
  std::vector<float> p = randv(n, 14), g = randv(n, 15, 0.1), m = randv(n, 16, 0.01), v = randv(n, 17, 0.001);
  for (float& x : v) x = std::fabs(x);
  DeviceBuffer<float> d_p(p), d_g(g), d_m(m), d_v(v), d_clip(1), d_norm(1);
  DeviceBuffer<double> d_sumsq(1);
  DeviceBuffer<bf16> d_pb(n);
  cu::sum_of_squares(d_sumsq.ptr, d_g.ptr, n, 0);
  const double max_norm = 1.0;
  cu::grad_clip_factor(d_clip.ptr, d_norm.ptr, d_sumsq.ptr, max_norm, 0);
  const double norm = std::sqrt(sum_of_squares(g.data(), n));
  const double clip = std::min(1.0, max_norm / (norm + 1e-6));
  const int step = 3;
  AdamWStep s{1e-3, 0.9, 0.95, 1e-8, 0.1, 1 - std::pow(0.9, step), 1 - std::pow(0.95, step), 1.0};
  cu::adamw_update(d_p.ptr, d_pb.ptr, d_g.ptr, d_m.ptr, d_v.ptr, n, s, true, d_clip.ptr, 0);
  s.grad_scale = clip;
  adamw_update(p.data(), g.data(), m.data(), v.data(), n, s, true);
  const double got_norm = d_norm.download()[0];
  note("grad norm " + std::to_string(got_norm) + " vs CPU " + std::to_string(norm));
  CHECK(std::fabs(got_norm - norm) <= 1e-5 * norm, "grad norm " << got_norm << " vs " << norm);
  CHECK(clip < 1, "the test must exercise clipping");
  compare("adamw p", d_p.download(), p, {1e-6, 1e-5});
  compare("adamw m", d_m.download(), m, {1e-7, 1e-5});
  compare("adamw v", d_v.download(), v, {1e-9, 1e-5});
  compare("adamw bf16 copy", d_pb.download(), p, {1e-6, 4e-3});
}

// Attention: GPU against the CPU backend (double) on the same inputs, forward and backward, with packed
// segments, grouped-query heads and a T that is not a multiple of the tile.
template <typename T>
static void attention_case(int D, int T_, int H, int KVH, const std::vector<int>& cuts, Tol tf, Tol tb) {
  const int B = 2;
  const AttentionShape s{B, T_, H, KVH, D};
  const size_t N = (size_t)B * T_;
  std::vector<int32_t> seg(N);
  for (int b = 0; b < B; b++) {
    int id = 0;
    for (int t = 0; t < T_; t++) {
      if (b == 0 && std::find(cuts.begin(), cuts.end(), t) != cuts.end()) id++;
      seg[(size_t)b * T_ + t] = 10 * b + id;  // row 1: one segment
    }
  }
  std::vector<float> q = randv(N * s.qdim(), 20, 1.5), k = randv(N * s.kvdim(), 21, 1.5), v = randv(N * s.kvdim(), 22),
                     dout = randv(N * s.qdim(), 23);
  DeviceBuffer<T> d_q(to_device_type<T>(q)), d_k(to_device_type<T>(k)), d_v(to_device_type<T>(v)),
      d_dout(to_device_type<T>(dout));
  DeviceBuffer<T> d_out(N * s.qdim()), d_dq(N * s.qdim()), d_dk(N * s.kvdim()), d_dv(N * s.kvdim());
  DeviceBuffer<float> d_lse((size_t)B * H * T_), d_delta((size_t)B * H * T_);
  DeviceBuffer<int32_t> d_seg(seg), d_start(N);
  const cu::AttnShape cs{B, T_, H, KVH, D};
  cu::segment_starts(d_start.ptr, d_seg.ptr, B, T_, 0);
  cu::attention_forward(d_out.ptr, d_lse.ptr, d_q.ptr, d_k.ptr, d_v.ptr, d_start.ptr, cs, 0);
  cu::attention_backward(d_dq.ptr, d_dk.ptr, d_dv.ptr, d_delta.ptr, d_dout.ptr, d_q.ptr, d_k.ptr, d_v.ptr, d_out.ptr,
                         d_lse.ptr, d_start.ptr, cs, 0);
  // CPU reference in double on the (rounded) inputs
  auto dbl = [](const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); };
  std::vector<double> Q = dbl(q), K = dbl(k), V = dbl(v), dO = dbl(dout), O(N * s.qdim()), L((size_t)B * H * T_);
  std::vector<double> dQ(N * s.qdim()), dK(N * s.kvdim()), dV(N * s.kvdim());
  std::vector<SegmentRun> runs;
  find_segment_runs(runs, seg.data(), B, T_);
  AttentionScratch<double> scratch;
  scratch.reserve(max_threads(), T_);
  attention_forward(O.data(), L.data(), Q.data(), K.data(), V.data(), runs, s, scratch);
  attention_backward(dQ.data(), dK.data(), dV.data(), dO.data(), Q.data(), K.data(), V.data(), O.data(), L.data(), runs,
                     s, scratch);
  auto flt = [](const std::vector<double>& x) { return std::vector<float>(x.begin(), x.end()); };
  std::ostringstream p;
  p << precision_name<T>() << " attention D=" << D << " T=" << T_ << " H=" << H << " KVH=" << KVH;
  compare(p.str() + " out", d_out.download(), flt(O), tf);
  compare(p.str() + " lse", d_lse.download(), flt(L), {1e-4, 1e-5});
  compare(p.str() + " dq", d_dq.download(), flt(dQ), tb);
  compare(p.str() + " dk", d_dk.download(), flt(dK), tb);
  compare(p.str() + " dv", d_dv.download(), flt(dV), tb);
}
TEST(cuda_attention_fp32) {
  attention_case<float>(64, 200, 4, 2, {70, 150, 151}, {1e-5, 1e-4}, {1e-4, 1e-3});
  attention_case<float>(32, 97, 6, 2, {40}, {1e-5, 1e-4}, {1e-4, 1e-3});
  attention_case<float>(128, 130, 2, 1, {64}, {1e-5, 1e-4}, {1e-4, 1e-3});
}
TEST(cuda_attention_bf16) {
  attention_case<bf16>(64, 200, 4, 2, {70, 150, 151}, {1e-2, 1e-2}, {3e-2, 2e-2});
  attention_case<bf16>(128, 130, 2, 1, {64}, {1e-2, 1e-2}, {3e-2, 2e-2});
}

// Attention of new queries over a KV cache: against the CPU op (scores in double), with a cache longer than the
// kernel's staging chunk (512 positions) so more than one chunk is folded in.
static void cached_attention_case(int start, int n, int H, int KVH, int D) {
  const size_t cap = (size_t)start + n, Q = (size_t)H * D, KV = (size_t)KVH * D;
  std::vector<float> q = randv(n * Q, 40, 1.5), k = randv(cap * KV, 41, 1.5), v = randv(cap * KV, 42), att(n * Q);
  DeviceBuffer<float> d_q(q), d_k(k), d_v(v), d_att(n * Q);
  cu::cached_attention(d_att.ptr, d_q.ptr, d_k.ptr, d_v.ptr, start, n, H, KVH, D, 0);
  cached_attention(att.data(), q.data(), k.data(), v.data(), start, n, H, KVH, D);
  std::ostringstream s;
  s << "cached_attention start=" << start << " n=" << n << " H=" << H << " KVH=" << KVH << " D=" << D;
  compare(s.str(), d_att.download(), att, {1e-5, 1e-4});
}
TEST(cuda_cached_attention_fp32) {
  cached_attention_case(37, 5, 4, 2, 64);
  cached_attention_case(600, 2, 2, 1, 32);
  cached_attention_case(0, 3, 2, 2, 128);
}
