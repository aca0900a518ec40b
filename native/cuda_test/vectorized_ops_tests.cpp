// The 128-bit pack paths of rmsnorm, rope, the embedding gather, AdamW and the bf16 cast against their
// one-element-at-a-time paths and the CPU ops: the same data runs once from aligned buffers (packs, and for the
// flat ops a tail of n % pack elements) and once from buffers one element off (no pack is aligned there, so the
// entry picks the single-element kernel). Elementwise ops give the same bits either way; rmsnorm sums a row in
// another order, so both paths are held to 1e-5 of the CPU's rmsnorm instead. The bf16 copies (AdamW's compute
// copy, the cast, rmsnorm's output for the next GEMM) equal the rounding of the fp32 results.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>
#include "adamw.cuh"
#include "device_buffer.h"
#include "embedding.cuh"
#include "ops/adamw.h"
#include "ops/rmsnorm.h"
#include "rmsnorm.cuh"
#include "rope.cuh"
#include "test_util.h"

using namespace rt;
using namespace rt::test;
using namespace rt::cuda::test;
namespace cu = rt::cuda;
using cu::bf16;

namespace {

template <typename T>
void same_bits(const std::string& what, const std::vector<T>& a, const std::vector<T>& b) {
  CHECK(a.size() == b.size(), what);
  for (size_t i = 0; i < a.size(); i++)
    CHECK(std::memcmp(&a[i], &b[i], sizeof(T)) == 0,
          what << "[" << i << "]: packed " << to_float(a[i]) << " vs one at a time " << to_float(b[i]));
}

bool is_rounding_of(bf16 b, float f) {
  const bf16 r = __float2bfloat16_rn(f);
  return std::memcmp(&b, &r, sizeof b) == 0;
}

// AdamW over n = 1003 weights (250 packs and a tail of 3) with its compute copy, and the cast, both placements.
std::vector<std::vector<float>> adamw_run(int shift, std::vector<bf16>& copy, std::vector<bf16>& cast) {
  const size_t n = 1003;
  std::vector<float> p(n), g(n), m(n), v(n);
  fill_uniform(p, 71), fill_uniform(g, 72), fill_uniform(m, 73, 0.1), fill_uniform(v, 74, 0.1);
  for (float& x : v) x = x * x;
  ShiftedBuffer<float> dp(p, shift), dg(g, shift), dm(m, shift), dv(v, shift);
  ShiftedBuffer<bf16> dc(std::vector<bf16>(n), shift), dcast(std::vector<bf16>(n), shift);
  const AdamWStep s{1e-2, 0.9, 0.95, 1e-8, 0.1, 1 - 0.9 * 0.9, 1 - 0.95 * 0.95, 0.5};
  cu::adamw_update(dp.ptr, dc.ptr, dg.ptr, dm.ptr, dv.ptr, n, s, true, nullptr, 0);
  cu::to_bf16(dcast.ptr, dg.ptr, n, 0);
  copy = dc.get(), cast = dcast.get();
  return {dp.get(), dm.get(), dv.get()};
}

}  // namespace

TEST(cuda_vectorized_adamw_and_cast) {
  std::vector<bf16> copy_a, cast_a, copy_s, cast_s;
  const auto packed = adamw_run(0, copy_a, cast_a), single = adamw_run(1, copy_s, cast_s);
  const char* names[] = {"adamw p", "adamw m", "adamw v"};
  for (int t = 0; t < 3; t++) same_bits(names[t], packed[t], single[t]);
  same_bits("adamw bf16 copy", copy_a, copy_s);
  same_bits("to_bf16", cast_a, cast_s);
  // against the CPU's AdamW (the same formula in fp32), and the copy is the rounding of the weights
  const size_t n = 1003;
  std::vector<float> p(n), g(n), m(n), v(n);
  fill_uniform(p, 71), fill_uniform(g, 72), fill_uniform(m, 73, 0.1), fill_uniform(v, 74, 0.1);
  for (float& x : v) x = x * x;
  adamw_update<float>(p.data(), g.data(), m.data(), v.data(), n,
                      {1e-2, 0.9, 0.95, 1e-8, 0.1, 1 - 0.9 * 0.9, 1 - 0.95 * 0.95, 0.5}, true);
  expect_close("adamw p vs the CPU", packed[0].data(), p.data(), n, 1e-6, 1e-5);
  for (size_t i = 0; i < n; i++) {
    CHECK(is_rounding_of(copy_a[i], packed[0][i]), "compute copy [" << i << "]");
    CHECK(is_rounding_of(cast_a[i], g[i]), "to_bf16 [" << i << "]");
  }
}

template <typename T>
void rope_and_embedding_paths() {
  // rope: D = 64 (32 frequencies: whole packs of 4 floats and of 8 bf16), 3 heads
  const int N = 9, heads = 3, D = 64, C = 40, V = 11;
  std::vector<float> x((size_t)N * heads * D), wte((size_t)V * C);
  fill_uniform(x, 81), fill_uniform(wte, 82);
  const std::vector<T> xt = to_device_type<T>(x), wt = to_device_type<T>(wte);
  std::vector<int32_t> pos(N), ids{3, 0, 10, 11, 5, -1, 7, 7, 2};  // two bad ids: rows of zeros
  for (int i = 0; i < N; i++) pos[i] = 5 * i + 1;
  std::vector<double> inv(D / 2);
  for (int j = 0; j < D / 2; j++) inv[j] = std::pow(10000.0, -2.0 * j / D);
  DeviceBuffer<int32_t> dpos(pos), dids(ids), bad(1);
  DeviceBuffer<double> dinv(inv);
  std::vector<std::vector<T>> out[2];
  for (int shift : {0, 1}) {
    ShiftedBuffer<T> dx(xt, shift), dw(wt, shift), de(std::vector<T>((size_t)N * C), shift);
    cu::rope_forward(dx.ptr, dpos.ptr, dinv.ptr, N, heads, D, 0);
    out[shift].push_back(dx.get());
    cu::rope_backward(dx.ptr, dpos.ptr, dinv.ptr, N, heads, D, 0);
    out[shift].push_back(dx.get());
    cu::embedding_forward(de.ptr, dids.ptr, dw.ptr, N, C, V, bad.ptr, 0);
    out[shift].push_back(de.get());
  }
  const std::string p = precision_name<T>();
  same_bits(p + " rope forward", out[0][0], out[1][0]);
  same_bits(p + " rope backward", out[0][1], out[1][1]);
  same_bits(p + " embedding", out[0][2], out[1][2]);
  // the gather against the table itself
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) {
      const float got = to_float(out[0][2][(size_t)n * C + c]);
      const float want = ids[n] >= 0 && ids[n] < V ? to_float(wt[(size_t)ids[n] * C + c]) : 0.f;
      CHECK(got == want, p << " embedding row " << n << " col " << c << ": " << got << " vs " << want);
    }
}

TEST(cuda_vectorized_rope_and_embedding_fp32) { rope_and_embedding_paths<float>(); }
TEST(cuda_vectorized_rope_and_embedding_bf16) { rope_and_embedding_paths<bf16>(); }

// rmsnorm from aligned rows (C = 48: 12 packs of 4 floats) and from rows one element off, and C = 45 (no packs),
// each within 1e-5 of the CPU's; the bf16 output for the next GEMM is the rounding of the fp32 one.
TEST(cuda_vectorized_rmsnorm) {
  for (int C : {48, 45}) {
    for (int shift : {0, 1}) {
      const int N = 13;
      const std::string at = "C=" + std::to_string(C) + (shift ? " (one element off)" : "") + " ";
      std::vector<float> x((size_t)N * C), w(C), dy((size_t)N * C);
      fill_uniform(x, 91, 3.0), fill_uniform(w, 92), fill_uniform(dy, 93);
      std::vector<float> y(x.size()), rstd(N), dx(x.size()), dw(C, 0.f);
      rmsnorm_forward<float>(y.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5);
      rmsnorm_backward<float>(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), N, C);
      ShiftedBuffer<float> gx(x, shift), gw(w, shift), gdy(dy, shift), gy(std::vector<float>(x.size()), shift),
          gdx(std::vector<float>(x.size()), shift);
      ShiftedBuffer<bf16> gy16(std::vector<bf16>(x.size()), shift);
      DeviceBuffer<float> grstd(N), gdw(std::vector<float>(C, 0.f));
      cu::rmsnorm_forward(gy.ptr, grstd.ptr, gx.ptr, gw.ptr, N, C, 1e-5, 0, gy16.ptr);
      cu::rmsnorm_backward(gdx.ptr, gdw.ptr, gdy.ptr, gx.ptr, gw.ptr, grstd.ptr, N, C, 0);
      const std::vector<float> got_y = gy.get(), got_dx = gdx.get();
      expect_close(at + "rmsnorm out", got_y.data(), y.data(), y.size(), 1e-5, 1e-5);
      expect_close(at + "rmsnorm dinp", got_dx.data(), dx.data(), dx.size(), 1e-5, 1e-5);
      const std::vector<bf16> y16 = gy16.get();
      for (size_t i = 0; i < y16.size(); i++)
        CHECK(is_rounding_of(y16[i], got_y[i]), at << "bf16 out [" << i << "] is not the rounding of " << got_y[i]);
    }
  }
}
