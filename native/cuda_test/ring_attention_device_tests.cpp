// Ring attention with its blocks in device memory (ring_attention_device.h) against the host's ring attention
// (ring_attention.cpp, itself tested against plain attention over the full rows): the same outputs, log-sum-exps
// and gradients on every rank, for a ring of three device ranks (the dK/dV accumulators then visit a rank
// between their first visit and their owner) and for a ring that mixes a host rank with a device rank over
// the same link protocol. Segments cross the chunk boundaries; one row is a single segment. And the product
// model: two device ranks of a sequence-parallel step give one CPU worker's loss and gradients.
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>
#include "cuda_backend.h"
#include "device_buffer.h"
#include "model.h"
#include "ring_attention.h"
#include "ring_attention_device.h"
#include "ring_exchange.h"
#include "test_util.h"

using namespace rt;
using rt::cuda::test::DeviceBuffer;
using rt::test::expect_close;
using rt::test::note;

namespace {

// Every rank runs the forward and backward twice: the second pass reuses the buffers sized by the first.
constexpr int kPasses = 2;

struct RankData {
  std::vector<float> q, k, v, dout;
  std::vector<int32_t> seg;
};
struct RankResult {
  std::vector<float> out, lse, dq, dk, dv;
};

float noise(uint64_t i, int salt) {
  const uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t)salt * 0xBF58476D1CE4E5B9ull;
  return (float)((x >> 40) % 2001) / 1000.f - 1.f;
}

// Rank r's zigzag share of rows x T tokens (T = 2 * n * chunk) of random q, k, v, dout and packed segments.
RankData share(const RingShape& s, int n, int r) {
  const int T = 2 * n * s.chunk, QD = s.H * s.D, KD = s.KVH * s.D;
  RankData d;
  for (int b = 0; b < s.rows; b++)
    for (int chunk : {r, 2 * n - 1 - r})
      for (int t = chunk * s.chunk; t < (chunk + 1) * s.chunk; t++) {
        const uint64_t g = (uint64_t)b * T + t;
        for (int e = 0; e < QD; e++) d.q.push_back(noise(g * QD + e, 1)), d.dout.push_back(noise(g * QD + e, 4));
        for (int e = 0; e < KD; e++) d.k.push_back(noise(g * KD + e, 2)), d.v.push_back(noise(g * KD + e, 3));
        // row 0: segments of 5, 9, 15 and the rest, crossing chunk boundaries; row 1: one segment
        d.seg.push_back(b == 1 ? 7 : t < 5 ? 1 : t < 14 ? 2 : t < 29 ? 3 : 4);
      }
  return d;
}

RankResult on_host(const RankData& d, const RingShape& s, const SequenceParallel& sp) {
  const size_t n = (size_t)s.tokens();
  RankResult r{std::vector<float>(n * s.H * s.D), std::vector<float>(n * s.H), std::vector<float>(n * s.H * s.D),
               std::vector<float>(n * s.KVH * s.D), std::vector<float>(n * s.KVH * s.D)};
  std::vector<SegmentRun> runs;
  find_segment_runs(runs, d.seg.data(), 2 * s.rows, s.chunk);
  RingScratch<float> scratch;
  for (int pass = 0; pass < kPasses; pass++) {
    ring_attention_forward(r.out.data(), r.lse.data(), d.q.data(), d.k.data(), d.v.data(), d.seg.data(), runs, s, sp,
                           scratch);
    ring_attention_backward(r.dq.data(), r.dk.data(), r.dv.data(), d.dout.data(), d.q.data(), d.k.data(), d.v.data(),
                            r.out.data(), r.lse.data(), d.seg.data(), runs, s, sp, scratch);
  }
  return r;
}

// A device link (DeviceRingLink, NCCL's role) over a host link: what start() is given goes through host copies
// on the exchange's threads, and lands in the device buffers at wait().
class CopyingDeviceLink final : public DeviceRingLink {
 public:
  CopyingDeviceLink(const SequenceParallel& sp) : sp_(sp) {}
  void start(const std::vector<Piece>& sends, const std::vector<Piece>& recvs, void* stream) override {
    // The backend's stream is not the legacy one these plain copies use: its blocks are waited for first.
    CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
    out_.resize(sends.size()), in_.resize(recvs.size()), recvs_ = recvs;
    std::vector<ring::Piece> s, r;
    for (size_t i = 0; i < sends.size(); i++) {
      out_[i].resize(sends[i].bytes);
      CUDA_CHECK(cudaMemcpy(out_[i].data(), sends[i].data, sends[i].bytes, cudaMemcpyDeviceToHost));
      s.push_back({out_[i].data(), sends[i].bytes});
    }
    for (size_t i = 0; i < recvs.size(); i++) {
      in_[i].resize(recvs[i].bytes);
      r.push_back({in_[i].data(), recvs[i].bytes});
    }
    x_ = std::make_unique<ring::Exchange>(sp_, s, r);
  }
  void wait(void*) override {
    x_->wait();
    x_.reset();
    for (size_t i = 0; i < recvs_.size(); i++)
      CUDA_CHECK(cudaMemcpy(recvs_[i].data, in_[i].data(), recvs_[i].bytes, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaDeviceSynchronize());  // landed before the backend's stream reads the blocks
  }

 private:
  SequenceParallel sp_;
  std::vector<std::vector<char>> out_, in_;
  std::vector<Piece> recvs_;
  std::unique_ptr<ring::Exchange> x_;
};

RankResult on_device(int device, const RankData& d, const RingShape& s, SequenceParallel sp, bool direct) {
  CopyingDeviceLink device_link(sp);
  if (direct) sp.device_link = &device_link;
  CUDA_CHECK(cudaSetDevice(device));
  const size_t n = (size_t)s.tokens();
  DeviceBuffer<float> q(d.q), k(d.k), v(d.v), dout(d.dout);
  DeviceBuffer<float> out(n * s.H * s.D), lse(n * s.H), dq(n * s.H * s.D), dk(n * s.KVH * s.D), dv(n * s.KVH * s.D);
  cuda::DeviceRingAttention ring(device, nullptr);
  for (int pass = 0; pass < kPasses; pass++) {
    ring.forward(out.ptr, lse.ptr, q.ptr, k.ptr, v.ptr, d.seg.data(), s, sp);
    ring.backward(dq.ptr, dk.ptr, dv.ptr, dout.ptr, q.ptr, k.ptr, v.ptr, out.ptr, lse.ptr, d.seg.data(), s, sp);
  }
  return {out.download(), lse.download(), dq.download(), dk.download(), dv.download()};
}

// Every rank's results with the given ranks on the device (the others on the host) against an all-host ring.
void device_ring_equals_host_ring(const RingShape& s, int n, const std::vector<bool>& device_rank,
                                  bool direct = false) {
  std::vector<RankData> data;
  for (int r = 0; r < n; r++) data.push_back(share(s, n, r));
  auto run = [&](const std::vector<bool>& on_gpu) {
    auto links = local_ring(n);
    std::vector<RankResult> got(n);
    std::vector<std::string> errors(n);
    std::vector<std::thread> threads;
    for (int r = 0; r < n; r++)
      threads.emplace_back([&, r] {
        try {
          const SequenceParallel sp{r, n, links[r].get(), nullptr};
          got[r] = on_gpu[r] ? on_device(r % 2, data[r], s, sp, direct) : on_host(data[r], s, sp);
        } catch (const std::exception& e) {
          errors[r] = e.what();
          links[r]->shutdown();
        }
      });
    for (auto& t : threads) t.join();
    for (int r = 0; r < n; r++) CHECK(errors[r].empty(), "rank " << r << ": " << errors[r]);
    return got;
  };
  const std::vector<RankResult> want = run(std::vector<bool>(n, false)), got = run(device_rank);
  double worst = 0;
  for (int r = 0; r < n; r++) {
    const std::string who = "rank " + std::to_string(r) + (device_rank[r] ? " (device)" : " (host)");
    const std::vector<std::pair<const char*, std::pair<const std::vector<float>*, const std::vector<float>*>>> parts = {
        {"out", {&got[r].out, &want[r].out}},
        {"lse", {&got[r].lse, &want[r].lse}},
        {"dq", {&got[r].dq, &want[r].dq}},
        {"dk", {&got[r].dk, &want[r].dk}},
        {"dv", {&got[r].dv, &want[r].dv}}};
    for (const auto& [name, p] : parts)
      worst = std::max(worst,
                       expect_close(who + " " + name, p.first->data(), p.second->data(), p.first->size(), 2e-5, 2e-5));
  }
  char line[80];
  std::snprintf(line, sizeof line, "max diff vs the host ring %.2e", worst);
  note(line);
}

}  // namespace

TEST(cuda_ring_attention_of_three_device_ranks_equals_the_host_ring_gqa) {
  device_ring_equals_host_ring({2, 6, 4, 2, 32}, 3, {true, true, true});
}

// Over a device link (NCCL's place: blocks from device buffer to device buffer), the same steps and results.
TEST(cuda_ring_attention_of_three_device_ranks_over_a_device_link) {
  device_ring_equals_host_ring({2, 6, 4, 2, 32}, 3, {true, true, true}, true);
}

TEST(cuda_ring_attention_device_and_host_ranks_share_a_ring_d64) {
  device_ring_equals_host_ring({2, 8, 2, 1, 64}, 2, {false, true});
}

namespace {

ModelConfig sp_model() {
  ModelConfig c;
  c.vocab_size = 37;
  c.hidden_size = 64;
  c.intermediate_size = 64;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 32;
  c.rope_theta = 10000;
  c.qkv_bias = true;
  return c;
}

struct Tokens {
  int rows, T;
  std::vector<int32_t> ids, labels, pos, seg;
  Batch batch() const { return {rows, T, ids.data(), labels.data(), pos.data(), seg.data()}; }
};

// Two rows of 32: the first packed with segments of 11, 13 and 8 (crossing the chunks of 8), the second one.
Tokens full_rows(int vocab) {
  Tokens f{2, 32, {}, {}, {}, {}};
  for (int b = 0; b < 2; b++)
    for (int t = 0; t < 32; t++) {
      const int seg = b == 1 ? 0 : t < 11 ? 0 : t < 24 ? 1 : 2, start = b == 1 ? 0 : t < 11 ? 0 : t < 24 ? 11 : 24;
      f.ids.push_back((b * 32 + t) * 7 % vocab);
      f.labels.push_back(t % 6 == 5 ? kIgnoreIndex : (b * 32 + t) * 5 % vocab);
      f.pos.push_back(t - start);
      f.seg.push_back(seg);
    }
  return f;
}

Tokens zigzag(const Tokens& f, int n, int r) {
  const int c = f.T / (2 * n);
  Tokens s{f.rows, 2 * c, {}, {}, {}, {}};
  for (int b = 0; b < f.rows; b++)
    for (int chunk : {r, 2 * n - 1 - r})
      for (int t = chunk * c; t < (chunk + 1) * c; t++) {
        const size_t i = (size_t)b * f.T + t;
        s.ids.push_back(f.ids[i]), s.labels.push_back(f.labels[i]), s.pos.push_back(f.pos[i]);
        s.seg.push_back(f.seg[i]);
      }
  return s;
}

}  // namespace

TEST(cuda_sequence_parallel_2_device_ranks_equal_one_cpu_worker) {
  const ModelConfig c = sp_model();
  const Tokens full = full_rows(c.vocab_size);
  Model<float> one(c);
  one.init_random(9, 0.2);
  int64_t targets = 0;
  for (int32_t l : full.labels) targets += l != kIgnoreIndex;
  StepOptions o1;
  o1.loss_scale = 1.0 / (double)targets;
  one.zero_grad();
  const StepResult want = one.forward_backward(full.batch(), o1);

  const int n = 2;
  auto links = local_ring(n);
  std::vector<std::unique_ptr<Backend<float>>> gpus;
  std::vector<std::unique_ptr<Model<float>>> ranks;
  for (int r = 0; r < n; r++) {
    gpus.push_back(rt::cuda::make_cuda_backend(r));
    ranks.push_back(std::make_unique<Model<float>>(c, *gpus[r]));
    ranks[r]->init_random(9, 0.2);
    ranks[r]->zero_grad();
  }
  std::vector<StepResult> got(n);
  std::vector<std::string> errors(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; r++)
    threads.emplace_back([&, r] {
      try {
        CUDA_CHECK(cudaSetDevice(r));
        const Tokens mine = zigzag(full, n, r);
        const SequenceParallel sp{r, n, links[r].get(), nullptr};
        StepOptions o;
        o.loss_scale = o1.loss_scale;
        o.sp = &sp;
        got[r] = ranks[r]->forward_backward(mine.batch(), o);
      } catch (const std::exception& e) {
        errors[r] = e.what();
        links[r]->shutdown();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < n; r++) CHECK(errors[r].empty(), "rank " << r << ": " << errors[r]);
  CHECK(got[0].targets + got[1].targets == want.targets, "targets");
  const double loss = got[0].loss_sum + got[1].loss_sum;
  CHECK(std::fabs(loss - want.loss_sum) <= 1e-5 * std::fabs(want.loss_sum), "loss " << loss << " vs " << want.loss_sum);
  const size_t G = one.num_trainable();
  std::vector<float> sum(G, 0.f), part(G);
  for (int r = 0; r < n; r++) {
    gpus[r]->download(part.data(), ranks[r]->grads(), G);
    for (size_t i = 0; i < G; i++) sum[i] += part[i];
  }
  const double diff = expect_close("gradient sum", sum.data(), one.grads(), G, 2e-5, 1e-4);
  char line[120];
  std::snprintf(line, sizeof line, "SP=2 on two device ranks: loss %.6f, gradient max diff %.2e",
                loss / (double)want.targets, diff);
  note(line);
}
