#pragma once
// One attention problem for the tensor-core tests: random bf16 inputs on the device (packed segments in row
// 0, one segment in row 1), segment starts, and the CPU op's answer in double on the same (bf16-rounded)
// inputs, so a comparison measures the kernel's arithmetic and output rounding only.
#include <algorithm>
#include <vector>
#include "attention.cuh"
#include "device_buffer.h"
#include "ops/attention.h"
#include "parallel.h"
#include "test_util.h"

namespace rt::cuda::test {

struct AttentionProblem {
  AttentionShape s;
  size_t N;
  std::vector<float> q, k, v, dout;
  std::vector<int32_t> seg;
  DeviceBuffer<bf16> dq_in, dk_in, dv_in, ddout;  // inputs on the device
  DeviceBuffer<int32_t> start;
  std::vector<float> out, lse, dq, dk, dv;  // the CPU reference

  AttentionProblem(int D, int T, int H, int KVH, const std::vector<int>& cuts, uint64_t seed = 20)
      : s{2, T, H, KVH, D},
        N((size_t)2 * T),
        q(random(N * s.qdim(), seed, 1.5)),
        k(random(N * s.kvdim(), seed + 1, 1.5)),
        v(random(N * s.kvdim(), seed + 2, 1.0)),
        dout(random(N * s.qdim(), seed + 3, 1.0)),
        seg(segments(T, cuts)),
        dq_in(to_device_type<bf16>(q)),
        dk_in(to_device_type<bf16>(k)),
        dv_in(to_device_type<bf16>(v)),
        ddout(to_device_type<bf16>(dout)),
        start(N) {
    DeviceBuffer<int32_t> d_seg(seg);
    segment_starts(start.ptr, d_seg.ptr, s.B, T, 0);
    reference();
  }
  AttnShape shape() const { return {s.B, s.T, s.H, s.KVH, s.D}; }

 private:
  static std::vector<float> random(size_t n, uint64_t seed, double scale) {
    std::vector<float> x(n);
    rt::test::fill_uniform(x, seed, scale);
    return x;
  }
  // row 0: a new segment at each cut; row 1: one segment
  static std::vector<int32_t> segments(int T, const std::vector<int>& cuts) {
    std::vector<int32_t> seg((size_t)2 * T);
    int id = 0;
    for (int t = 0; t < T; t++) {
      if (std::find(cuts.begin(), cuts.end(), t) != cuts.end()) id++;
      seg[t] = id;
      seg[(size_t)T + t] = 100;
    }
    return seg;
  }
  void reference() {
    auto dbl = [](const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); };
    auto flt = [](const std::vector<double>& x) { return std::vector<float>(x.begin(), x.end()); };
    std::vector<double> Q = dbl(q), K = dbl(k), V = dbl(v), dO = dbl(dout), O(N * s.qdim()), L((size_t)s.B * s.H * s.T),
                        dQ(N * s.qdim()), dK(N * s.kvdim()), dV(N * s.kvdim());
    std::vector<SegmentRun> runs;
    find_segment_runs(runs, seg.data(), s.B, s.T);
    AttentionScratch<double> scratch;
    scratch.reserve(max_threads(), s.T);
    attention_forward(O.data(), L.data(), Q.data(), K.data(), V.data(), runs, s, scratch);
    attention_backward(dQ.data(), dK.data(), dV.data(), dO.data(), Q.data(), K.data(), V.data(), O.data(), L.data(),
                       runs, s, scratch);
    out = flt(O), lse = flt(L), dq = flt(dQ), dk = flt(dK), dv = flt(dV);
  }
};

}  // namespace rt::cuda::test
