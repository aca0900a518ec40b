// Every op's backward against central finite differences in double, plus attention against a direct
// (untiled, unfactored) implementation of masked softmax attention.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>
#include "config.h"
#include "ops/attention.h"
#include "ops/cross_entropy.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"
#include "ops/vexp.h"
#include "test_util.h"

using namespace rt;
using namespace rt::test;
using Vec = std::vector<double>;

static double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
  return s;
}

TEST(rmsnorm_gradients) {
  const int N = 3, C = 7;
  Vec x(N * C), w(C), R(N * C), out(N * C), rstd(N);
  fill_uniform(x, 1, 2.0);
  fill_uniform(w, 2);
  fill_uniform(R, 3);
  auto loss = [&] {
    rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5);
    return dot(out, R);
  };
  loss();
  Vec dx(N * C), dw(C, 0.5);  // dw starts non-zero: parameter grads accumulate
  rmsnorm_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), rstd.data(), N, C);
  for (double& g : dw) g -= 0.5;
  check_gradient("rmsnorm dx", loss, x, dx);
  check_gradient("rmsnorm dw", loss, w, dw);
}

TEST(linear_gradients_with_and_without_bias) {
  const int N = 4, I = 5, O = 3;
  for (bool bias : {false, true}) {
    Vec x(N * I), w(O * I), b(O), R(N * O), out(N * O);
    fill_uniform(x, 4);
    fill_uniform(w, 5);
    fill_uniform(b, 6);
    fill_uniform(R, 7);
    auto loss = [&] {
      linear_forward(out.data(), x.data(), w.data(), bias ? b.data() : nullptr, N, I, O);
      return dot(out, R);
    };
    loss();
    Vec dx(N * I), dw(O * I, 0.0), db(O, 0.0);
    linear_backward(dx.data(), dw.data(), bias ? db.data() : nullptr, R.data(), x.data(), w.data(), N, I, O);
    check_gradient("linear dx", loss, x, dx);
    check_gradient("linear dw", loss, w, dw);
    if (bias) check_gradient("linear db", loss, b, db);
  }
}

TEST(swiglu_gradients) {
  const int n = 11;
  Vec g(n), u(n), R(n), h(n);
  fill_uniform(g, 8, 3.0);
  fill_uniform(u, 9, 2.0);
  fill_uniform(R, 10);
  auto loss = [&] {
    swiglu_forward(h.data(), g.data(), u.data(), n);
    return dot(h, R);
  };
  Vec dg(n), du(n);
  swiglu_backward(dg.data(), du.data(), R.data(), g.data(), u.data(), n);
  check_gradient("swiglu dgate", loss, g, dg);
  check_gradient("swiglu dup", loss, u, du);
}

TEST(rope_gradients_and_rotate_half_convention) {
  const int N = 3, heads = 2, D = 6;
  ModelConfig cfg;
  cfg.head_dim = D;
  cfg.rope_theta = 10000;
  const std::vector<double> inv = rope_inv_freq(cfg);
  std::vector<int32_t> pos = {0, 5, 2};
  Vec x(N * heads * D), R(N * heads * D), y;
  fill_uniform(x, 11);
  fill_uniform(R, 12);
  auto loss = [&] {
    y = x;
    rope_forward(y.data(), pos.data(), inv.data(), N, heads, D);
    return dot(y, R);
  };
  loss();
  // rotate_half pairs dimension j with j + D/2 (not the interleaved 2j, 2j+1): check every value directly.
  for (int n = 0; n < N; n++)
    for (int h = 0; h < heads; h++)
      for (int j = 0; j < D / 2; j++) {
        const double a = pos[n] * inv[j], c = std::cos(a), s = std::sin(a);
        const double* xr = x.data() + ((size_t)n * heads + h) * D;
        const double* yr = y.data() + ((size_t)n * heads + h) * D;
        CHECK(within_tolerance(yr[j], xr[j] * c - xr[j + D / 2] * s, 1e-12, 0), "n=" << n << " h=" << h << " j=" << j);
        CHECK(within_tolerance(yr[j + D / 2], xr[j + D / 2] * c + xr[j] * s, 1e-12, 0),
              "n=" << n << " h=" << h << " j=" << j + D / 2);
      }
  Vec dx = R;
  rope_backward(dx.data(), pos.data(), inv.data(), N, heads, D);
  check_gradient("rope dx", loss, x, dx);
}

TEST(llama3_rope_scaling_matches_transformers_rule) {
  ModelConfig cfg;
  cfg.head_dim = 128;
  cfg.rope_theta = 500000;
  cfg.rope_scaling = {true, 8, 1, 4, 8192};
  const std::vector<double> scaled = rope_inv_freq(cfg);
  cfg.rope_scaling.llama3 = false;
  const std::vector<double> plain = rope_inv_freq(cfg);
  // Short wavelengths (high frequencies) are kept, long ones divided by the factor, medium ones blended.
  CHECK(scaled[0] == plain[0]);
  CHECK(std::fabs(scaled.back() - plain.back() / 8) < 1e-18);
  int blended = 0;
  for (size_t j = 0; j < plain.size(); j++) {
    CHECK(scaled[j] <= plain[j] && scaled[j] >= plain[j] / 8 - 1e-18);
    blended += scaled[j] < plain[j] && scaled[j] > plain[j] / 8 * (1 + 1e-12);
  }
  CHECK(blended > 0, "no frequency in the blended band");
}

TEST(cross_entropy_gradients_skip_ignored_positions) {
  const int N = 4, V = 5;
  Vec z(N * V), losses(N), dz(N * V);
  fill_uniform(z, 13, 3.0);
  std::vector<int32_t> labels = {2, kIgnoreIndex, 0, 4};
  const double scale = 0.37;
  auto loss = [&] {
    return cross_entropy_forward_backward(losses.data(), (double*)nullptr, z.data(), labels.data(), N, V, scale).sum *
           scale;
  };
  LossSum ls = cross_entropy_forward_backward(losses.data(), dz.data(), z.data(), labels.data(), N, V, scale);
  CHECK(ls.count == 3);
  CHECK(losses[1] == 0);
  for (int v = 0; v < V; v++) CHECK(dz[1 * V + v] == 0);
  check_gradient("cross_entropy dlogits", loss, z, dz);
  bool threw = false;
  labels[0] = V;
  try {
    cross_entropy_forward_backward(losses.data(), dz.data(), z.data(), labels.data(), N, V, scale);
  } catch (const Error& e) {
    threw = std::string(e.what()).find("cross_entropy") == 0;
  }
  CHECK(threw, "a label outside the vocabulary must be an error naming the op");
}

TEST(embedding_gradient_accumulates_repeated_ids) {
  const int N = 5, C = 3, V = 4;
  std::vector<int32_t> ids = {1, 3, 1, 0, 1};
  Vec w(V * C), R(N * C), out(N * C);
  fill_uniform(w, 14);
  fill_uniform(R, 15);
  auto loss = [&] {
    embedding_forward(out.data(), ids.data(), w.data(), N, C, V);
    return dot(out, R);
  };
  Vec dw(V * C, 0.0);
  embedding_backward(dw.data(), R.data(), ids.data(), N, C);
  check_gradient("embedding dwte", loss, w, dw);
}

// Direct masked softmax attention: scores for every (query, key) pair, mask by segment and causality.
static void attention_direct(Vec& out, const Vec& q, const Vec& k, const Vec& v, const std::vector<int32_t>& seg,
                             const AttentionShape& s) {
  const int QD = s.qdim(), KD = s.kvdim();
  out.assign((size_t)s.B * s.T * QD, 0);
  for (int b = 0; b < s.B; b++)
    for (int h = 0; h < s.H; h++) {
      const int kvh = h / (s.H / s.KVH);
      for (int i = 0; i < s.T; i++) {
        std::vector<double> p(s.T, 0);
        double mx = -1e300, sum = 0;
        for (int j = 0; j <= i; j++) {
          if (seg[b * s.T + j] != seg[b * s.T + i]) continue;
          double d = 0;
          for (int c = 0; c < s.D; c++)
            d += q[((size_t)b * s.T + i) * QD + h * s.D + c] * k[((size_t)b * s.T + j) * KD + kvh * s.D + c];
          p[j] = d / std::sqrt((double)s.D);
          mx = std::max(mx, p[j]);
        }
        for (int j = 0; j <= i; j++)
          if (seg[b * s.T + j] == seg[b * s.T + i]) sum += p[j] = std::exp(p[j] - mx);
          else p[j] = 0;
        for (int c = 0; c < s.D; c++) {
          double acc = 0;
          for (int j = 0; j <= i; j++) acc += p[j] / sum * v[((size_t)b * s.T + j) * KD + kvh * s.D + c];
          out[((size_t)b * s.T + i) * QD + h * s.D + c] = acc;
        }
      }
    }
}

static void attention_case(const AttentionShape& s, const std::vector<int32_t>& seg, bool full_fd) {
  const size_t N = (size_t)s.B * s.T;
  Vec q(N * s.qdim()), k(N * s.kvdim()), v(N * s.kvdim()), R(N * s.qdim()), out(N * s.qdim()),
      lse((size_t)s.B * s.H * s.T);
  fill_uniform(q, 16, 1.5);
  fill_uniform(k, 17, 1.5);
  fill_uniform(v, 18);
  fill_uniform(R, 19);
  std::vector<SegmentRun> runs;
  find_segment_runs(runs, seg.data(), s.B, s.T);
  AttentionScratch<double> scratch;
  scratch.reserve(max_threads(), s.T);
  auto loss = [&] {
    attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), runs, s, scratch);
    return dot(out, R);
  };
  loss();
  Vec direct;
  attention_direct(direct, q, k, v, seg, s);
  expect_close("attention output vs direct", out.data(), direct.data(), out.size(), 1e-12, 1e-10);
  Vec dq(q.size()), dk(k.size()), dv(v.size());
  attention_backward(dq.data(), dk.data(), dv.data(), R.data(), q.data(), k.data(), v.data(), out.data(), lse.data(),
                     runs, s, scratch);
  if (full_fd) {
    check_gradient("attention dq", loss, q, dq);
    check_gradient("attention dk", loss, k, dk);
    check_gradient("attention dv", loss, v, dv);
    return;
  }
  // Long rows: finite differences on a spread of elements, including ones in later query tiles.
  for (auto* pair : {&q, &k, &v}) {
    Vec& x = *pair;
    const Vec& g = pair == &q ? dq : pair == &k ? dk : dv;
    for (size_t i = 7; i < x.size(); i += x.size() / 23 + 1) {
      const double fd = finite_difference(loss, x[i]);
      CHECK(within_tolerance(g[i], fd, 1e-7, 1e-5), "element " << i << ": fd " << fd << " analytic " << g[i]);
    }
  }
}

TEST(attention_packed_gqa_gradients) {
  // Row 0: three segments then two padding tokens (their own segment); row 1: one segment.
  const AttentionShape s{2, 9, 4, 2, 3};
  std::vector<int32_t> seg = {1, 1, 1, 2, 2, 3, 3, 0, 0, /* row 1 */ 5, 5, 5, 5, 5, 5, 5, 5, 5};
  attention_case(s, seg, true);
}

TEST(attention_long_rows_cross_query_tiles) {
  const AttentionShape s{1, 2 * kAttentionTile + 37, 2, 1, 4};
  std::vector<int32_t> seg(s.T, 0);
  for (int t = 150; t < s.T; t++) seg[t] = 1;  // a segment spanning a tile boundary
  attention_case(s, seg, false);
}

TEST(attention_rejects_non_contiguous_segments) {
  std::vector<SegmentRun> runs;
  std::vector<int32_t> seg = {1, 1, 2, 1};
  bool threw = false;
  try {
    find_segment_runs(runs, seg.data(), 1, 4);
  } catch (const Error& e) {
    threw = std::string(e.what()).find("not contiguous") != std::string::npos;
  }
  CHECK(threw);
}

TEST(vexp_float_matches_exp_to_float_precision) {
  double worst = 0;
  for (int i = 0; i <= 200000; i++) {
    const float x = -87.0f + 175.0f * i / 200000;
    const double want = std::exp((double)x);
    worst = max_keeping_nan(worst, std::fabs(vexp(x) - want) / want);
  }
  CHECK(worst < 4e-7, "max relative error " << worst);
  CHECK(vexp(-1000.0f) == 0.0f && vexp(0.0f) == 1.0f);
  char line[80];
  std::snprintf(line, sizeof line, "max relative error of vexp(float) over [-87, 88]: %.2e", worst);
  note(line);
}
