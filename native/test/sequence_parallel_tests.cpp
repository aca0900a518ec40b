// Sequence parallelism: a row split into zigzag chunks over N ranks, with ring attention between them,
// gives one worker's loss and gradients (summed over the ranks, as the all-reduce sums them).
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>
#include "host_batch.h"
#include "model.h"
#include "ops/attention_block.h"
#include "ops/cross_entropy.h"
#include "ring_link.h"
#include "test_util.h"

using namespace rt;
using namespace rt::test;

namespace {

ModelConfig sp_config(bool gqa, bool bias) {
  ModelConfig c;
  c.vocab_size = 37;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = gqa ? 2 : 4;
  c.head_dim = 4;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000;
  c.qkv_bias = c.o_bias = c.mlp_bias = bias;
  return c;
}

using Rows = HostBatch;

// Rank r's share: chunks r and 2N-1-r of every row, each row's own ids, labels, positions and segments.
Rows zigzag_share(const Rows& full, int n, int r) {
  const int c = full.T / (2 * n);
  Rows s{full.rows, 2 * c, {}, {}, {}, {}};
  for (int b = 0; b < full.rows; b++)
    for (int chunk : {r, 2 * n - 1 - r})
      for (int t = chunk * c; t < (chunk + 1) * c; t++) {
        const size_t i = (size_t)b * full.T + t;
        s.ids.push_back(full.ids[i]);
        s.labels.push_back(full.labels[i]);
        s.pos.push_back(full.pos[i]);
        s.seg.push_back(full.seg[i]);
      }
  return s;
}

template <typename T>
void randomize(Model<T>& m, uint64_t seed) {
  m.init_random(seed, 0.3);
  for (const ParamEntry& p : m.table().entries)
    if (p.shape.size() == 1) {
      const bool norm = p.name.find("norm") != std::string::npos;
      for (size_t i = 0; i < p.size; i++)
        m.params()[p.offset + i] = (T)((norm ? 1.0 : 0.0) + 0.3 * (2 * uniform01(seed, 9, p.offset + i) - 1));
    }
}

// ||got - want|| / ||want|| per parameter tensor must stay within rel; returns the largest.
double per_tensor_relative(const std::vector<ParamEntry>& entries, const std::vector<double>& got, const float* want,
                           double rel) {
  double worst = 0;
  for (const ParamEntry& p : entries) {
    double num = 0, den = 0;
    for (size_t i = 0; i < p.size; i++) {
      const double d = got[p.offset + i] - want[p.offset + i];
      num += d * d;
      den += (double)want[p.offset + i] * want[p.offset + i];
    }
    const double r = std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
    CHECK(std::isfinite(r) && r <= rel, p.name << ": relative difference " << r << " over " << rel);
    worst = std::max(worst, r);
  }
  return worst;
}

struct Setup {
  ModelConfig cfg;
  bool lora = false;
  bool checkpointing = false;               // the ranks recompute each layer (its ring attention too) in the backward
  std::vector<RingStats>* stats = nullptr;  // per rank, when the ring's transfers are to be counted
};

// One worker's step against N ranks' (their gradient sum), fp32, per tensor within 1e-5 relative.
void sp_equals_one_worker(const Setup& setup, const Rows& full, int n) {
  Model<float> one(setup.cfg);
  randomize(one, 11);
  LoraConfig lc;
  lc.rank = 4;
  lc.alpha = 8;
  lc.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  lc.seed = 3;
  if (setup.lora) {
    one.enable_lora(lc);
    for (size_t i = 0; i < one.num_lora_params(); i++)
      one.lora_params()[i] = (float)(0.2 * (2 * uniform01(5, 5, i) - 1));
  }
  int64_t targets = 0;
  for (int32_t l : full.labels) targets += l != kIgnoreIndex;
  const double scale = 1.0 / (double)targets;
  one.zero_grad();
  StepOptions o1;
  o1.loss_scale = scale;
  const StepResult want = one.forward_backward(full.view(), o1);

  std::vector<std::unique_ptr<Model<float>>> ranks;
  for (int r = 0; r < n; r++) {
    ranks.push_back(std::make_unique<Model<float>>(setup.cfg));
    randomize(*ranks[r], 11);
    ranks[r]->set_activation_checkpointing(setup.checkpointing);
    if (setup.lora) {
      ranks[r]->enable_lora(lc);
      std::copy(one.lora_params(), one.lora_params() + one.num_lora_params(), ranks[r]->lora_params());
    }
    ranks[r]->zero_grad();
  }
  auto links = local_ring(n);
  std::vector<Rows> shares;
  for (int r = 0; r < n; r++) shares.push_back(zigzag_share(full, n, r));
  std::vector<StepResult> got(n);
  std::vector<std::string> errors(n);
  std::vector<SequenceParallel> sps(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; r++) {
    sps[r] = {r, n, links[r].get(), setup.stats ? &(*setup.stats)[r] : nullptr};
    threads.emplace_back([&, r] {
      try {
        StepOptions o;
        o.loss_scale = scale;
        o.sp = &sps[r];
        got[r] = ranks[r]->forward_backward(shares[r].view(), o);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < n; r++) CHECK(errors[r].empty(), "rank " << r << ": " << errors[r]);

  double loss = 0;
  int64_t count = 0;
  for (const StepResult& g : got) {
    loss += g.loss_sum;
    count += g.targets;
  }
  CHECK(count == want.targets, "targets " << count << " vs " << want.targets);
  CHECK(std::fabs(loss - want.loss_sum) <= 1e-5 * std::fabs(want.loss_sum),
        "loss sum " << loss << " vs one worker " << want.loss_sum);
  const size_t G = one.num_trainable();
  std::vector<double> sum(G, 0.0);
  for (auto& m : ranks)
    for (size_t i = 0; i < G; i++) sum[i] += m->grads()[i];
  const double worst = per_tensor_relative(one.trainable_entries(), sum, one.grads(), 1e-5);
  char line[128];
  std::snprintf(line, sizeof line, "SP=%d: loss %.6f, worst per-tensor relative gradient difference %.2e", n,
                want.loss_sum / want.targets, worst);
  note(line);
}

// Two rows of 4096 tokens; segment lengths chosen so segments cross chunk boundaries for N = 2 and 4 (chunks
// of 1024 and 512), plus padding at the end of the second row.
Rows long_rows(int vocab) { return packed_batch({{700, 1500, 300, 1100, 496}, {2600, 37, 900, 400}}, 4096, vocab, 21); }

}  // namespace

TEST(sequence_parallel_2_equals_one_worker_gqa_biases) {
  const Setup s{sp_config(true, true)};
  sp_equals_one_worker(s, long_rows(s.cfg.vocab_size), 2);
}

TEST(sequence_parallel_4_equals_one_worker_gqa_biases) {
  const Setup s{sp_config(true, true)};
  sp_equals_one_worker(s, long_rows(s.cfg.vocab_size), 4);
}

TEST(sequence_parallel_4_equals_one_worker_mha_no_bias) {
  const Setup s{sp_config(false, false)};
  sp_equals_one_worker(s, long_rows(s.cfg.vocab_size), 4);
}

TEST(sequence_parallel_2_lora_gradients_equal_one_worker) {
  Setup s{sp_config(true, true)};
  s.lora = true;
  sp_equals_one_worker(s, packed_batch({{300, 500, 224}}, 1024, s.cfg.vocab_size, 4), 2);
}

TEST(sequence_parallel_2_with_activation_checkpointing_equals_one_worker) {
  Setup s{sp_config(true, true)};
  s.checkpointing = true;
  sp_equals_one_worker(s, packed_batch({{300, 500, 224}, {1024}}, 1024, s.cfg.vocab_size, 6), 2);
}

TEST(sequence_parallel_3_equals_one_worker_and_counts_each_ring_transfer_once) {
  Setup s{sp_config(true, true)};
  std::vector<RingStats> stats(3);
  s.stats = &stats;
  const Rows full = packed_batch({{700, 1000, 700}, {150, 2250}}, 2400, s.cfg.vocab_size, 13);  // chunks of 400
  sp_equals_one_worker(s, full, 3);
  // Per layer and rank: the forward passes on N-1 key/value blocks; the backward passes on N-1 blocks and N-1
  // dK/dV accumulators (each owner adds its own share locally, so no accumulator makes an N-th hop).
  const double tokens = 2 * 2 * 400, kv = tokens * s.cfg.num_kv_heads * s.cfg.head_dim * sizeof(float);
  const double block = 2 * kv + tokens * sizeof(int32_t), acc = 2 * kv;
  const double want = s.cfg.num_layers * (2 * block + 2 * (block + acc));
  for (int r = 0; r < 3; r++) {
    CHECK(stats[r].bytes_sent == want, "rank " << r << " sent " << stats[r].bytes_sent << " bytes, want " << want);
    CHECK(stats[r].transfer_ms > 0 && stats[r].exposed_ms >= 0,
          "rank " << r << ": transfer " << stats[r].transfer_ms << " ms, exposed " << stats[r].exposed_ms << " ms");
  }
}

TEST(sequence_parallel_one_segment_spanning_the_row) {
  const Setup s{sp_config(true, false)};
  sp_equals_one_worker(s, packed_batch({{256}}, 256, s.cfg.vocab_size, 9), 4);
}

TEST(unconnected_chunks_are_skipped) {
  // query chunk at 8..15 holds segments 2 and 3; key chunk at 0..7 holds segments 1 and 2: only 2 meets
  const std::vector<int32_t> qseg = {2, 2, 2, 3, 3, 3, 3, 3}, kseg = {1, 1, 1, 1, 1, 2, 2, 2};
  std::vector<SegmentRun> qruns, kruns;
  find_segment_runs(qruns, qseg.data(), 1, 8);
  find_segment_runs(kruns, kseg.data(), 1, 8);
  std::vector<BlockPair> pairs;
  connect_chunks(pairs, qruns, 0, {0, 8}, qseg.data(), 8, kruns, 0, {0, 0}, kseg.data(), 8);
  CHECK(pairs.size() == 1, "pairs " << pairs.size());
  CHECK(qruns[pairs[0].q_run].start == 0 && kruns[pairs[0].k_run].start == 5 && !pairs[0].causal);
  // keys wholly after the queries: nothing, whatever the segments
  connect_chunks(pairs, kruns, 0, {0, 0}, kseg.data(), 8, qruns, 0, {0, 8}, qseg.data(), 8);
  CHECK(pairs.empty());
  // no segment in common: nothing
  const std::vector<int32_t> other = {7, 7, 7, 7, 8, 8, 8, 8};
  std::vector<SegmentRun> oruns;
  find_segment_runs(oruns, other.data(), 1, 8);
  connect_chunks(pairs, qruns, 0, {0, 8}, qseg.data(), 8, oruns, 0, {0, 0}, other.data(), 8);
  CHECK(pairs.empty());
  // the same chunk: causal pairs per run
  connect_chunks(pairs, qruns, 0, {0, 8}, qseg.data(), 8, qruns, 0, {0, 8}, qseg.data(), 8);
  CHECK(pairs.size() == 2 && pairs[0].causal && pairs[1].causal);
}

TEST(tcp_ring_link_carries_bytes_and_refuses_a_wrong_secret) {
  TcpRingListener a("127.0.0.1", 0), b("127.0.0.1", 0);
  std::unique_ptr<RingLink> la, lb;
  std::string err;
  std::thread ta([&] { la = a.join("127.0.0.1", b.port, "s3cret", 10000); });
  std::thread tb([&] { lb = b.join("127.0.0.1", a.port, "s3cret", 10000); });
  ta.join();
  tb.join();
  std::vector<int> sent(100000), got(100000);
  for (size_t i = 0; i < sent.size(); i++) sent[i] = (int)(i * 7);
  std::thread s([&] { la->send(sent.data(), sent.size() * sizeof(int)); });
  lb->recv(got.data(), got.size() * sizeof(int));
  s.join();
  CHECK(got == sent);
  // a peer with another secret is dropped: the listener times out waiting for the real one
  TcpRingListener c("127.0.0.1", 0), d("127.0.0.1", 0);
  std::thread td([&] {
    try {
      d.join("127.0.0.1", c.port, "wrong", 1500);
    } catch (const std::exception&) {
    }
  });
  try {
    c.join("127.0.0.1", d.port, "right", 1500);
    err = "joined";
  } catch (const std::exception& e) {
    err = e.what();
  }
  td.join();
  CHECK(err.find("no previous rank connected") != std::string::npos, err);
}
