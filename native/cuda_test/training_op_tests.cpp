// The CUDA ops training needs beyond the layer ops, against the CPU: cross entropy with -inf logits, with
// per-position weights (preference losses) and with bad labels (the first reported, as on the CPU); the bias
// gradient over many rows in fp32 and bf16; a bf16 base's conversions and embedding; LoRA dropout's mask.
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <vector>
#include "bf16_base.cuh"
#include "bias.cuh"
#include "cross_entropy.cuh"
#include "device_buffer.h"
#include "error.h"
#include "ignore_index.h"
#include "lora_dropout.cuh"
#include "ops/cross_entropy.h"
#include "random.h"
#include "tensor_io.h"
#include "test_util.h"

using namespace rt;
using namespace rt::test;
using namespace rt::cuda::test;
namespace cu = rt::cuda;
using cu::bf16;

namespace {

std::vector<float> randv(size_t n, uint64_t seed, double scale = 1.0) {
  std::vector<float> v(n);
  fill_uniform(v, seed, scale);
  return v;
}

void compare(const std::string& what, const std::vector<float>& got, const std::vector<float>& want, Tol t) {
  CHECK(got.size() == want.size(), what << ": size " << got.size() << " vs " << want.size());
  for (size_t i = 0; i < got.size(); i++)
    CHECK(std::isfinite(got[i]) == std::isfinite(want[i]), what << "[" << i << "]: " << got[i] << " vs " << want[i]);
  const double d = expect_close(what, got.data(), want.data(), got.size(), t.abs, t.rel);
  std::ostringstream s;
  s << what << ": max diff " << d << " (tolerance " << t.abs << " + " << t.rel << " * |ref|)";
  note(s.str());
}

// Cross entropy on the device and the CPU over the same (bf16-rounded when T is bf16) logits.
template <typename T>
void cross_entropy_against_cpu(const std::string& what, std::vector<float> z, const std::vector<int32_t>& labels, int V,
                               const std::vector<float>* weights) {
  const int N = (int)labels.size();
  const double scale = 1.0 / 7;
  DeviceBuffer<T> d_z(to_device_type<T>(z)), d_dz(z.size());
  DeviceBuffer<int32_t> d_labels(labels), d_bad(std::vector<int32_t>{cu::kNoBadPosition});
  DeviceBuffer<float> d_losses(N), d_w(weights ? *weights : std::vector<float>(1));
  DeviceBuffer<double> d_sum(1);
  cu::cross_entropy_forward_backward(d_losses.ptr, d_dz.ptr, d_z.ptr, d_labels.ptr, N, V, (float)scale, d_sum.ptr,
                                     d_bad.ptr, 0, weights ? d_w.ptr : nullptr);
  std::vector<float> losses(N), dz(z.size());
  const LossSum ls = cross_entropy_forward_backward(losses.data(), dz.data(), z.data(), labels.data(), N, V, scale,
                                                    weights ? weights->data() : nullptr);
  const std::string p = std::string(precision_name<T>()) + " " + what;
  compare(p + " losses", d_losses.download(), losses, {2e-5, 2e-5});
  compare(p + " dlogits", to_floats(d_dz.download()), dz, pick<T>({1e-8, 1e-4}, {1e-6, 8e-3}));
  const double sum = d_sum.download()[0];
  CHECK(std::fabs(sum - ls.sum) <= 1e-4 * std::fabs(ls.sum) + 1e-4, p << " loss sum " << sum << " vs " << ls.sum);
  CHECK(d_bad.download()[0] == cu::kNoBadPosition, p << ": no label was bad");
}

template <typename T>
void cross_entropy_with_minus_inf_logits() {
  // A vocabulary with masked entries (-inf logits), a row whose first logit is -inf (the online maximum starts
  // from -inf), and a row where every logit but the label's is -inf.
  const int N = 6, V = 1500;
  std::vector<float> z = randv((size_t)N * V, 31, 4.0);
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int n = 0; n < N; n++)
    for (int v = 0; v < V; v++)
      if (v % 3 == n % 3 || v < 40) z[(size_t)n * V + v] = ninf;
  std::vector<int32_t> labels = {41, 100, 700, kIgnoreIndex, 1201, 52};
  for (int n = 0; n < N; n++)
    if (labels[n] != kIgnoreIndex) z[(size_t)n * V + labels[n]] = 1.5f;
  for (int v = 0; v < V; v++)
    if (v != labels[5]) z[(size_t)5 * V + v] = ninf;
  cross_entropy_against_cpu<T>("cross_entropy with -inf logits", z, labels, V, nullptr);
}

template <typename T>
void weighted_cross_entropy() {
  const int N = 9, V = 777;
  const std::vector<float> z = randv((size_t)N * V, 32, 5.0);
  std::vector<int32_t> labels(N);
  std::vector<float> weights(N);
  for (int n = 0; n < N; n++) {
    labels[n] = n == 4 ? kIgnoreIndex : (int32_t)(uniform01(7, 3, n) * V);
    weights[n] = (float)(n % 3 == 0 ? -0.75 : 0.25 * n);  // a preference loss's weights change sign
  }
  cross_entropy_against_cpu<T>("weighted cross_entropy", z, labels, V, &weights);
}

template <typename T>
void bias_grad_case() {
  // Many rows (the sum is split over threads) and a column count that is not a multiple of the block's.
  const int N = 1000, O = 70;
  std::vector<float> dout = randv((size_t)N * O, 33), db0 = randv(O, 34);
  DeviceBuffer<T> d_dout(to_device_type<T>(dout));
  DeviceBuffer<float> d_db(db0);
  cu::bias_grad(d_db.ptr, d_dout.ptr, N, O, 0);
  std::vector<double> want(O);
  for (int o = 0; o < O; o++) {
    double s = db0[o];
    for (int n = 0; n < N; n++) s += dout[(size_t)n * O + o];
    want[o] = s;
  }
  const std::vector<float> got = d_db.download();
  std::vector<float> wantf(want.begin(), want.end());
  // fp32 sums of 1000 terms of size 1 in another order: a few ulps of the partial sums
  compare(std::string(precision_name<T>()) + " bias_grad (+=) vs a double sum", got, wantf, {2e-5, 2e-5});
  cu::bias_grad(d_db.ptr, d_dout.ptr, N, O, 0);
  const std::vector<float> twice = d_db.download();
  for (int o = 0; o < O; o++) {
    const float again = got[o] + (got[o] - db0[o]);  // the same partial sums added once more
    CHECK(std::fabs(twice[o] - again) <= 1e-4f * (1 + std::fabs(again)), "bias_grad accumulates, column " << o);
  }
}

}  // namespace

TEST(cuda_cross_entropy_with_minus_inf_logits_fp32) { cross_entropy_with_minus_inf_logits<float>(); }
TEST(cuda_cross_entropy_with_minus_inf_logits_bf16) { cross_entropy_with_minus_inf_logits<bf16>(); }
TEST(cuda_weighted_cross_entropy_fp32) { weighted_cross_entropy<float>(); }
TEST(cuda_weighted_cross_entropy_bf16) { weighted_cross_entropy<bf16>(); }

TEST(cuda_cross_entropy_reports_the_first_bad_label_as_the_cpu_does) {
  const int N = 50, V = 30;
  std::vector<float> z = randv((size_t)N * V, 35);
  std::vector<int32_t> labels(N, 3);
  labels[12] = V, labels[13] = -5, labels[40] = 1000;
  DeviceBuffer<float> d_z(z), d_losses(N);
  DeviceBuffer<int32_t> d_labels(labels), d_bad(std::vector<int32_t>{cu::kNoBadPosition});
  cu::cross_entropy_forward_backward(d_losses.ptr, (float*)nullptr, d_z.ptr, d_labels.ptr, N, V, 1.f, nullptr,
                                     d_bad.ptr, 0);
  CHECK(d_bad.download()[0] == 12, "first bad label at " << d_bad.download()[0]);
  std::vector<float> losses(N);
  std::string cpu_error;
  try {
    cross_entropy_forward_backward(losses.data(), (float*)nullptr, z.data(), labels.data(), N, V, 1.0);
  } catch (const Error& e) {
    cpu_error = e.what();
  }
  CHECK(cpu_error.find("at position 12 ") != std::string::npos, "the CPU reports the same position: " << cpu_error);
}

TEST(cuda_bias_grad_over_many_rows_fp32) { bias_grad_case<float>(); }
TEST(cuda_bias_grad_over_many_rows_bf16) { bias_grad_case<bf16>(); }

TEST(cuda_bf16_base_conversions_are_the_hosts_bits) {
  // Ties to even both ways, values that round up into the next exponent, infinities, a NaN, subnormals.
  std::vector<float> x = randv(4099, 36, 100.0);
  const uint32_t specials[] = {0x3f808000u, 0x3f818000u, 0x3f7fffffu, 0x7f7fffffu, 0x7f800000u,
                               0xff800000u, 0x7fc00001u, 0xffa00000u, 0x00000001u, 0x80008000u};
  for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) std::memcpy(&x[i], &specials[i], 4);
  DeviceBuffer<float> d_x(x), d_back(x.size());
  DeviceBuffer<uint16_t> d_bits(x.size());
  cu::round_to_bf16(d_bits.ptr, d_x.ptr, x.size(), 0);
  cu::widen_bf16(d_back.ptr, d_bits.ptr, x.size(), 0);
  const std::vector<uint16_t> bits = d_bits.download();
  const std::vector<float> back = d_back.download();
  for (size_t i = 0; i < x.size(); i++) {
    CHECK(bits[i] == float_to_bf16(x[i]), "element " << i << ": " << bits[i] << " vs host " << float_to_bf16(x[i]));
    const float want = bf16_to_float(bits[i]);
    CHECK(std::memcmp(&back[i], &want, 4) == 0, "widened element " << i);
  }
}

TEST(cuda_embedding_over_a_bf16_table_matches_the_cpu) {
  const int N = 40, C = 48, V = 20;
  std::vector<float> wte = randv((size_t)V * C, 37);
  std::vector<uint16_t> wte16(wte.size());
  for (size_t i = 0; i < wte.size(); i++) wte16[i] = float_to_bf16(wte[i]);
  std::vector<int32_t> ids(N);
  for (int n = 0; n < N; n++) ids[n] = (n * 7) % V;
  DeviceBuffer<uint16_t> d_wte(wte16);
  DeviceBuffer<int32_t> d_ids(ids), d_bad(std::vector<int32_t>{cu::kNoBadPosition});
  DeviceBuffer<float> d_out((size_t)N * C);
  cu::embedding_forward_bf16(d_out.ptr, d_ids.ptr, d_wte.ptr, N, C, V, d_bad.ptr, 0);
  const std::vector<float> out = d_out.download();
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++)
      CHECK(out[(size_t)n * C + c] == bf16_to_float(wte16[(size_t)ids[n] * C + c]), "row " << n << " col " << c);
  CHECK(d_bad.download()[0] == cu::kNoBadPosition);
  ids[30] = V, ids[9] = -1;
  d_ids.upload(ids);
  cu::embedding_forward_bf16(d_out.ptr, d_ids.ptr, d_wte.ptr, N, C, V, d_bad.ptr, 0);
  CHECK(d_bad.download()[0] == 9, "first bad id at " << d_bad.download()[0]);
}

TEST(cuda_lora_dropout_draws_the_cpus_mask) {
  const size_t n = 5000;
  const double p = 0.3;
  const uint64_t seed = 11, stream = ((uint64_t)4 << 20) ^ ((uint64_t)1 << 4) ^ 5;
  const std::vector<float> x = randv(n, 38), dxd = randv(n, 39), dinp0 = randv(n, 40);
  DeviceBuffer<float> d_x(x), d_xd(n), d_dxd(dxd), d_dinp(dinp0);
  cu::lora_dropout_forward(d_xd.ptr, d_x.ptr, n, p, seed, stream, 0);
  cu::lora_dropout_backward(d_dinp.ptr, d_dxd.ptr, n, p, seed, stream, 0);
  const std::vector<float> xd = d_xd.download(), dinp = d_dinp.download();
  const float kept_scale = (float)(1.0 / (1.0 - p));
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    const bool keep = uniform01(seed, stream, i) >= p;
    kept += keep;
    CHECK(xd[i] == (keep ? x[i] * kept_scale : 0.f), "dropped input " << i);
    CHECK(dinp[i] == dinp0[i] + (keep ? dxd[i] * kept_scale : 0.f), "input gradient " << i);
  }
  CHECK(kept > n / 2 && kept < n * 9 / 10, "a mask keeping about 70%: kept " << kept << " of " << n);
}
