// The tensor-core attention (flash_attention.cu) against the CPU op in double and against the SIMT kernels,
// all on the same bf16 inputs: forward (out, lse) and backward (dq, dk, dv), packed segments (one of a single
// token, cuts inside and across tiles), grouped-query heads, head dims 64 and 128, T not a multiple of the tile.
//
// Tolerances (abs + rel * |ref|), from where bf16 enters: the outputs are rounded to bf16 (relative 2^-9 =
// 0.2%); the forward rounds the probabilities P to bf16 before P V (each term off by at most 0.2%, and
// sum P = 1 with |v| <= 1, so at most 2e-3 absolute); the backward also rounds dS = P (dP - delta) to bf16
// before dS K and dS^T Q (0.2% of each term, sums over up to T keys of |q|, |k| <= 1.5). The SIMT kernels
// keep P and dS in fp32, so flash vs SIMT is allowed the flash error plus the SIMT one. lse is computed from
// fp32 sums in both and is held to the SIMT kernels' fp32-level tolerance.
#include <cmath>
#include <cstring>
#include <sstream>
#include "attention_fixture.h"
#include "flash_attention.cuh"

using namespace rt;
using namespace rt::test;
using namespace rt::cuda::test;
namespace cu = rt::cuda;
using cu::bf16;

namespace {

const Tol kForward{1e-2, 1e-2}, kBackward{3e-2, 2e-2}, kLse{1e-4, 1e-5};
const Tol kForwardVsSimt{2e-2, 2e-2}, kBackwardVsSimt{6e-2, 4e-2};

struct Result {
  std::vector<float> out, lse, dq, dk, dv;
};

Result run(AttentionProblem& p, bool flash) {
  const size_t N = p.N;
  const cu::AttnShape s = p.shape();
  DeviceBuffer<bf16> out(N * s.qdim()), dq(N * s.qdim()), dk(N * s.kvdim()), dv(N * s.kvdim());
  DeviceBuffer<float> lse((size_t)s.B * s.H * s.T), delta((size_t)s.B * s.H * s.T);
  if (flash) {
    cu::flash_attention_forward(out.ptr, lse.ptr, p.dq_in.ptr, p.dk_in.ptr, p.dv_in.ptr, p.start.ptr, s, 0);
    cu::flash_attention_backward(dq.ptr, dk.ptr, dv.ptr, delta.ptr, p.ddout.ptr, p.dq_in.ptr, p.dk_in.ptr, p.dv_in.ptr,
                                 out.ptr, lse.ptr, p.start.ptr, s, 0);
  } else {
    cu::simt_attention_forward(out.ptr, lse.ptr, p.dq_in.ptr, p.dk_in.ptr, p.dv_in.ptr, p.start.ptr, s, 0);
    cu::simt_attention_backward(dq.ptr, dk.ptr, dv.ptr, delta.ptr, p.ddout.ptr, p.dq_in.ptr, p.dk_in.ptr, p.dv_in.ptr,
                                out.ptr, lse.ptr, p.start.ptr, s, 0);
  }
  return {to_floats(out.download()), lse.download(), to_floats(dq.download()), to_floats(dk.download()),
          to_floats(dv.download())};
}

double compare(const std::string& what, const std::vector<float>& got, const std::vector<float>& want, Tol t) {
  CHECK(got.size() == want.size(), what << ": size " << got.size() << " vs " << want.size());
  const double d = expect_close(what, got.data(), want.data(), got.size(), t.abs, t.rel);
  std::ostringstream s;
  s << what << ": max diff " << d << " (tolerance " << t.abs << " + " << t.rel << " * |ref|)";
  note(s.str());
  return d;
}

void flash_case(int D, int T, int H, int KVH, const std::vector<int>& cuts) {
  AttentionProblem p(D, T, H, KVH, cuts);
  const Result f = run(p, true), simt = run(p, false);
  std::ostringstream n;
  n << "flash D=" << D << " T=" << T << " H=" << H << " KVH=" << KVH;
  const std::string name = n.str();
  compare(name + " out vs CPU", f.out, p.out, kForward);
  compare(name + " lse vs CPU", f.lse, p.lse, kLse);
  compare(name + " dq vs CPU", f.dq, p.dq, kBackward);
  compare(name + " dk vs CPU", f.dk, p.dk, kBackward);
  compare(name + " dv vs CPU", f.dv, p.dv, kBackward);
  compare(name + " out vs SIMT", f.out, simt.out, kForwardVsSimt);
  compare(name + " dq vs SIMT", f.dq, simt.dq, kBackwardVsSimt);
  compare(name + " dk vs SIMT", f.dk, simt.dk, kBackwardVsSimt);
  compare(name + " dv vs SIMT", f.dv, simt.dv, kBackwardVsSimt);
}

}  // namespace

TEST(cuda_flash_attention_d64_packed_gqa) { flash_case(64, 200, 4, 2, {70, 150, 151}); }
TEST(cuda_flash_attention_d128_packed_gqa) { flash_case(128, 130, 4, 1, {64, 100}); }

// A key tile that no query of a block attends to is never read: NaN in V over the first segment of row 0
// poisons only that segment's outputs. The query tiles from 128 on start at the second segment (100), so
// they must come out finite and right; a kernel that folded in the earlier keys (even with P = 0) would
// carry the NaN through P V.
TEST(cuda_flash_attention_never_reads_unconnected_tiles) {
  const int D = 64, T = 256, first_segment = 100;
  AttentionProblem p(D, T, 2, 2, {first_segment});
  std::vector<bf16> v(p.N * p.s.kvdim());
  for (size_t i = 0; i < v.size(); i++) v[i] = __float2bfloat16_rn(p.v[i]);
  for (size_t i = 0; i < (size_t)first_segment * p.s.kvdim(); i++) v[i] = __float2bfloat16_rn(NAN);
  p.dv_in.upload(v);
  const cu::AttnShape s = p.shape();
  DeviceBuffer<bf16> out(p.N * s.qdim());
  DeviceBuffer<float> lse((size_t)s.B * s.H * s.T);
  cu::flash_attention_forward(out.ptr, lse.ptr, p.dq_in.ptr, p.dk_in.ptr, p.dv_in.ptr, p.start.ptr, s, 0);
  const std::vector<float> got = to_floats(out.download());
  std::vector<float> g, w;
  size_t poisoned = 0;
  for (size_t n = 0; n < p.N; n++) {
    const bool checked = n >= 128;  // row 0 from position 128 on, and all of row 1
    for (int c = 0; c < s.qdim(); c++) {
      const float x = got[n * s.qdim() + c];
      if (checked) g.push_back(x), w.push_back(p.out[n * s.qdim() + c]);
      else if (n < (size_t)first_segment) poisoned += std::isnan(x);
    }
  }
  CHECK(poisoned == (size_t)first_segment * s.qdim(), "the first segment's outputs carry the NaN: " << poisoned);
  compare("flash out past the poisoned segment", g, w, kForward);
}

// attention_forward/backward<bf16> go to the tensor-core kernels (same bits as calling them directly);
// fp32 stays on the SIMT kernels (the op tests' fp32 cases).
TEST(cuda_attention_bf16_entry_uses_flash) {
  AttentionProblem p(64, 70, 2, 1, {30});
  const cu::AttnShape s = p.shape();
  DeviceBuffer<bf16> a(p.N * s.qdim()), b(p.N * s.qdim());
  DeviceBuffer<float> la((size_t)s.B * s.H * s.T), lb((size_t)s.B * s.H * s.T);
  cu::attention_forward(a.ptr, la.ptr, p.dq_in.ptr, p.dk_in.ptr, p.dv_in.ptr, p.start.ptr, s, 0);
  cu::flash_attention_forward(b.ptr, lb.ptr, p.dq_in.ptr, p.dk_in.ptr, p.dv_in.ptr, p.start.ptr, s, 0);
  const std::vector<bf16> x = a.download(), y = b.download();
  CHECK(std::memcmp(x.data(), y.data(), sizeof(bf16) * x.size()) == 0,
        "the bf16 entry's output differs from the flash kernels': it did not take them");
  // and the SIMT kernels, on the same inputs, give other bits (P in fp32): the comparison above can fail
  cu::simt_attention_forward(b.ptr, lb.ptr, p.dq_in.ptr, p.dk_in.ptr, p.dv_in.ptr, p.start.ptr, s, 0);
  const std::vector<bf16> z = b.download();
  CHECK(std::memcmp(x.data(), z.data(), sizeof(bf16) * x.size()) != 0, "SIMT and flash gave identical bits");
}
