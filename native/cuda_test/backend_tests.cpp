// The CUDA backend against the CPU backend through the model's op interface (backend.h): the same calls, the
// same arguments (device copies on the GPU side), fp32 on both; the seam's signatures are what is tested.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>
#include "backend.h"
#include "cuda_backend.h"
#include "device_buffer.h"
#include "parallel.h"
#include "test_util.h"

using namespace rt;
using rt::cuda::test::DeviceBuffer;
using rt::test::expect_close;
using rt::test::fill_uniform;
using rt::test::note;

namespace {

// got (device) against want (host), noted with its max diff
void same(const std::string& what, const DeviceBuffer<float>& got, const std::vector<float>& want, double tol) {
  const std::vector<float> g = got.download();
  note(what + " max diff " + std::to_string(expect_close(what, g.data(), want.data(), want.size(), tol, tol)));
}

}  // namespace

TEST(cuda_backend_matches_cpu_backend_through_the_op_interface) {
  const Backend<float>& cpu = cpu_backend<float>();
  const auto gpu_owner = rt::cuda::make_cuda_backend(0);
  const Backend<float>& gpu = *gpu_owner;
  note(std::string("backend: ") + gpu.name());
  const int B = 2, T = 48, H = 4, KVH = 2, D = 32, C = H * D, V = 97, I = 96;
  const int N = B * T;

  // linear with bias, forward and backward (dw, db accumulate onto what is there)
  std::vector<float> x(N * C), w(I * C), b(I), dout(N * I), dw(I * C), db(I);
  fill_uniform(x, 1), fill_uniform(w, 2, 0.2), fill_uniform(b, 3), fill_uniform(dout, 4), fill_uniform(dw, 5);
  fill_uniform(db, 6);
  DeviceBuffer<float> dx_(x), dw_w(w), db_b(b), ddout(dout), ddw(dw), ddb(db), dout_(N * I), ddinp(N * C);
  std::vector<float> out(N * I), dinp(N * C);
  cpu.linear_forward(out.data(), x.data(), w.data(), b.data(), N, C, I);
  gpu.linear_forward(dout_.ptr, dx_.ptr, dw_w.ptr, db_b.ptr, N, C, I);
  same("linear_forward", dout_, out, 1e-4);
  cpu.linear_backward(dinp.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), N, C, I);
  gpu.linear_backward(ddinp.ptr, ddw.ptr, ddb.ptr, ddout.ptr, dx_.ptr, dw_w.ptr, N, C, I);
  same("linear_backward dinp", ddinp, dinp, 1e-4);
  same("linear_backward dw", ddw, dw, 1e-4);
  same("linear_backward db", ddb, db, 1e-4);

  // rmsnorm and SwiGLU
  std::vector<float> nw(C), ln(N * C), rstd(N);
  fill_uniform(nw, 7);
  DeviceBuffer<float> dnw(nw), dln(N * C), drstd(N);
  cpu.rmsnorm_forward(ln.data(), rstd.data(), x.data(), nw.data(), N, C, 1e-5);
  gpu.rmsnorm_forward(dln.ptr, drstd.ptr, dx_.ptr, dnw.ptr, N, C, 1e-5);
  same("rmsnorm_forward", dln, ln, 1e-5);
  std::vector<float> h(N * I);
  DeviceBuffer<float> dh(N * I);
  cpu.swiglu_forward(h.data(), out.data(), dout.data(), h.size());
  gpu.swiglu_forward(dh.ptr, dout_.ptr, ddout.ptr, h.size());
  same("swiglu_forward", dh, h, 1e-5);

  // attention over packed rows: row 0 one segment, row 1 two (cut at 20)
  const std::vector<SegmentRun> runs{{0, 0, T}, {1, 0, 20}, {1, 20, T - 20}};
  const AttentionShape s{B, T, H, KVH, D};
  std::vector<float> q(N * C), k(N * KVH * D), v(N * KVH * D), att(N * C), lse(B * H * T);
  fill_uniform(q, 8), fill_uniform(k, 9), fill_uniform(v, 10);
  DeviceBuffer<float> dq(q), dk(k), dv(v), datt(N * C), dlse(B * H * T);
  AttentionScratch<float> scratch;
  scratch.reserve(max_threads(), T);
  cpu.attention_forward(att.data(), lse.data(), q.data(), k.data(), v.data(), runs, s, scratch);
  gpu.attention_forward(datt.ptr, dlse.ptr, dq.ptr, dk.ptr, dv.ptr, runs, s, scratch);
  same("attention_forward", datt, att, 1e-4);
  same("attention_forward lse", dlse, lse, 1e-4);

  // cross entropy with ignored positions, then the gradient norm and one AdamW update
  std::vector<float> logits(N * V), losses(N), dlogits(N * V);
  std::vector<int32_t> labels(N);
  fill_uniform(logits, 11, 3.0);
  for (int n = 0; n < N; n++) labels[n] = n % 5 == 0 ? kIgnoreIndex : (n * 37) % V;
  DeviceBuffer<float> dlogits_(logits), dlosses(N), ddl(N * V);
  DeviceBuffer<int32_t> dlabels(labels);
  const LossSum lc =
      cpu.cross_entropy_forward_backward(losses.data(), dlogits.data(), logits.data(), labels.data(), N, V, 0.01);
  const LossSum lg = gpu.cross_entropy_forward_backward(dlosses.ptr, ddl.ptr, dlogits_.ptr, dlabels.ptr, N, V, 0.01);
  CHECK(lc.count == lg.count, lc.count << " vs " << lg.count);
  expect_close("cross_entropy loss sum", &lg.sum, &lc.sum, 1, 1e-4, 1e-5);
  same("cross_entropy dlogits", ddl, dlogits, 1e-5);
  const double sc = cpu.sum_of_squares(w.data(), w.size()), sg = gpu.sum_of_squares(dw_w.ptr, w.size());
  expect_close("sum_of_squares", &sg, &sc, 1, 1e-6, 1e-5);
  std::vector<float> m(w.size(), 0.f), v2(w.size(), 0.f);
  DeviceBuffer<float> dm(m), dv2(v2);
  const AdamWStep step{1e-3, 0.9, 0.999, 1e-8, 0.1, 0.1, 0.001, 0.5};
  cpu.adamw_update(w.data(), dw.data(), m.data(), v2.data(), w.size(), step, true);
  gpu.adamw_update(dw_w.ptr, ddw.ptr, dm.ptr, dv2.ptr, w.size(), step, true);
  same("adamw_update weights", dw_w, w, 1e-6);
  same("adamw_update second moment", dv2, v2, 1e-6);
}

TEST(cuda_backend_attends_over_a_kv_cache_as_the_cpu_backend_does) {
  const Backend<float>& cpu = cpu_backend<float>();
  const auto gpu = rt::cuda::make_cuda_backend(0);
  // 3 new queries after 37 cached positions (a decode step of a batch), then a prefill of 5 from position 0,
  // with grouped KV heads; the cache holds room for more positions than are filled.
  const int H = 4, KVH = 2, D = 32, capacity = 64;
  for (const auto& [start, n] : std::vector<std::pair<int, int>>{{37, 3}, {0, 5}}) {
    std::vector<float> q((size_t)n * H * D), k((size_t)capacity * KVH * D), v(k.size()), att(q.size());
    fill_uniform(q, 21 + start), fill_uniform(k, 22 + start), fill_uniform(v, 23 + start);
    DeviceBuffer<float> dq(q), dk(k), dv(v), datt(att.size());
    cpu.cached_attention(att.data(), q.data(), k.data(), v.data(), start, n, H, KVH, D);
    gpu->cached_attention(datt.ptr, dq.ptr, dk.ptr, dv.ptr, start, n, H, KVH, D);
    same("cached_attention from " + std::to_string(start), datt, att, 1e-5);
  }
}

TEST(cuda_backend_places_buffers_in_device_memory_and_copies_across_the_seam) {
  const auto gpu = rt::cuda::make_cuda_backend(0);
  CHECK(!gpu->host_memory());
  const Buffer<float> b = gpu->zeros(1000);
  std::vector<float> host(1000), back(1000, -1.f);
  fill_uniform(host, 5);
  gpu->download(back.data(), b->data(), back.size());
  CHECK(std::all_of(back.begin(), back.end(), [](float x) { return x == 0.f; }), "zeros() must be zeros");
  // A kernel takes it (the emulator refuses a host pointer handed to a kernel, naming it).
  gpu->fill(b->data() + 900, 100, 2.f);
  gpu->download(back.data(), b->data(), back.size());
  CHECK(back[899] == 0.f && back[900] == 2.f && back[999] == 2.f);
  gpu->upload(b->data(), host.data(), 600);
  const Buffer<float> c = gpu->zeros(1000);
  gpu->copy(c->data() + 100, b->data(), 600);
  gpu->download(back.data(), c->data(), back.size());
  for (int i = 0; i < 1000; i++)
    CHECK(back[i] == (i >= 100 && i < 700 ? host[i - 100] : 0.f), "element " << i << " after upload and copy");
  const Buffer<int32_t> ids = gpu->int_zeros(3);
  const std::vector<int32_t> want{4, -100, 7};
  gpu->upload_ints(ids->data(), want.data(), 3);
  std::vector<int32_t> got(3);
  CUDA_CHECK(cudaDeviceSynchronize());  // the backend's own stream is not ordered before the legacy one's copy
  CUDA_CHECK(cudaMemcpy(got.data(), ids->data(), sizeof(int32_t) * 3, cudaMemcpyDeviceToHost));
  CHECK(got == want);
}
