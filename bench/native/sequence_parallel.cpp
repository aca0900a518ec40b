// Sequence parallelism on the sequence-parallelism bench model (bench_model.h: 2 layers, hidden 64, so that a
// 16384-token step takes seconds on two cores), one row of one long document per step: the training step
// (forward + backward) of one worker against two ranks joined by a loopback TCP ring (each rank on half the
// cores), the share of ring-attention transfer time hidden behind compute, and the longest row that fits a
// per-worker memory budget: measured for SP = 1 and 2, by formula for larger N.
//
// Hidden share: ring attention times each step's transfers on their own threads (transfer_ms) and the wait for
// them once the step's compute is done (exposed_ms); hidden = 1 - exposed / transfer, over both ranks.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>
#include "bench_model.h"
#include "benches.h"
#include "machine.h"
#include "model.h"
#include "parallel.h"
#include "random.h"
#include "ring_link.h"

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace rt;
using Clock = std::chrono::steady_clock;

namespace {

struct Row {
  int T;
  std::vector<int32_t> ids, labels, pos, seg;
  Batch batch() const { return {1, T, ids.data(), labels.data(), pos.data(), seg.data()}; }
};

Row document(int T, int vocab) {
  Row r{T, std::vector<int32_t>(T), std::vector<int32_t>(T), std::vector<int32_t>(T), std::vector<int32_t>(T, 1)};
  for (int i = 0; i < T; i++) {
    r.ids[i] = (int32_t)(uniform01(3, 0, i) * vocab);
    r.pos[i] = i;
  }
  for (int i = 0; i < T; i++) r.labels[i] = i + 1 < T ? r.ids[i + 1] : -100;
  return r;
}

Row zigzag(const Row& full, int n, int rank) {
  const int c = full.T / (2 * n);
  Row s{2 * c, {}, {}, {}, {}};
  for (int chunk : {rank, 2 * n - 1 - rank})
    for (int t = chunk * c; t < (chunk + 1) * c; t++) {
      s.ids.push_back(full.ids[t]);
      s.labels.push_back(full.labels[t]);
      s.pos.push_back(full.pos[t]);
      s.seg.push_back(full.seg[t]);
    }
  return s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void set_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(std::max(1, n));
#else
  (void)n;
#endif
}

// Ring attention's buffers per rank for T_local tokens: two travelling K/V blocks (with segment ids) and
// three dK/dV accumulators.
double ring_scratch_bytes(const ModelConfig& c, double local) {
  const double kv = local * c.num_kv_heads * c.head_dim * 4;
  return 2 * (2 * kv + local * 4) + 3 * 2 * kv;
}

struct Measured {
  double one_ms = 0, sp_ms = 0, hidden = 0, mb_sent = 0, transfer_ms = 0, exposed_ms = 0;
  double fixed_bytes = 0, act_one = 0, act_sp = 0;
};

// Progress on stdout as the bench goes (a step at 16384 tokens takes seconds), flushed for pipes.
void progress(const char* who, int T, int step, int warmup, int steps) {
  if (step < warmup) std::printf("  seq_len %d: %s, warm-up step %d of %d\n", T, who, step + 1, warmup);
  else std::printf("  seq_len %d: %s, step %d of %d\n", T, who, step - warmup + 1, steps);
  std::fflush(stdout);
}

Measured measure(int T, int warmup, int steps, int threads) {
  const ModelConfig c = sequence_parallel_bench_model_config();
  Measured out;
  const Row full = document(T, c.vocab_size);
  StepOptions o;
  o.loss_scale = 1.0 / (T - 1);
  {
    Model<float> one(c);
    one.init_random(0, 0.02);
    std::vector<double> ms;
    for (int s = 0; s < warmup + steps; s++) {
      progress("one worker", T, s, warmup, steps);
      one.zero_grad();
      const auto t0 = Clock::now();
      one.forward_backward(full.batch(), o);
      if (s >= warmup) ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    out.one_ms = median(ms);
    const MemoryReport m = one.memory();
    out.fixed_bytes = (double)(m.params + m.grads + m.optimizer);
    out.act_one = (double)m.activations;
  }
  std::vector<std::unique_ptr<Model<float>>> ranks;
  for (int r = 0; r < 2; r++) {
    ranks.push_back(std::make_unique<Model<float>>(c));
    ranks[r]->init_random(0, 0.02);
  }
  TcpRingListener l0("127.0.0.1", 0), l1("127.0.0.1", 0);
  std::unique_ptr<RingLink> links[2];
  std::thread j([&] { links[1] = l1.join("127.0.0.1", l0.port, "bench", 30000); });
  links[0] = l0.join("127.0.0.1", l1.port, "bench", 30000);
  j.join();
  RingStats stats[2];
  const Row shares[2] = {zigzag(full, 2, 0), zigzag(full, 2, 1)};
  std::vector<double> ms;
  for (int s = 0; s < warmup + steps; s++) {
    if (s == warmup) stats[0] = stats[1] = RingStats{};  // count the timed steps only
    progress("SP=2", T, s, warmup, steps);
    const auto t0 = Clock::now();
    std::vector<std::thread> th;
    for (int r = 0; r < 2; r++)
      th.emplace_back([&, r] {
        set_threads(threads / 2);
        SequenceParallel sp{r, 2, links[r].get(), &stats[r]};
        StepOptions so = o;
        so.sp = &sp;
        ranks[r]->zero_grad();
        ranks[r]->forward_backward(shares[r].batch(), so);
      });
    for (auto& t : th) t.join();
    if (s >= warmup) ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  out.sp_ms = median(ms);
  const double transfer = stats[0].transfer_ms + stats[1].transfer_ms;
  const double exposed = stats[0].exposed_ms + stats[1].exposed_ms;
  out.hidden = transfer > 0 ? std::max(0.0, 1.0 - exposed / transfer) : 1.0;
  out.transfer_ms = transfer / steps;
  out.exposed_ms = exposed / steps;
  out.mb_sent = stats[0].bytes_sent / steps / 1e6;
  out.act_sp = (double)ranks[0]->memory().activations + ring_scratch_bytes(c, T / 2.0);
  return out;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char ch : s)
    if (ch == '"' || ch == '\\') out += std::string("\\") + ch;
    else if ((unsigned char)ch >= 0x20) out += ch;
  return out;
}

std::vector<int> parse_list(const char* s) {
  std::vector<int> v;
  for (const char* p = s; *p;) {
    v.push_back(std::atoi(p));
    while (*p && *p != ',') p++;
    if (*p == ',') p++;
  }
  return v;
}

}  // namespace

int run_sequence_parallel_bench(int argc, char** argv) {
  std::vector<int> seqs = {8192, 16384};
  // No warm-up by default: the first step's only extra is allocating its activations (~0.3 GB at 16384
  // tokens), small next to a step that takes seconds, and a second pass would double the run.
  int steps = 1, warmup = 0;
  double budget_gib = 1;
  for (int i = 0; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--seq")) seqs = parse_list(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--steps")) steps = std::max(1, std::atoi(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--warmup")) warmup = std::max(0, std::atoi(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--budget-gib")) budget_gib = std::atof(argv[i + 1]);
    else {
      std::fprintf(stderr, "sp: unknown option %s (--seq A,B --steps N --warmup W --budget-gib G)\n", argv[i]);
      return 2;
    }
  }
  for (int T : seqs)
    if (T <= 0 || T % 4 != 0) {
      std::fprintf(stderr, "sp: --seq %d must be a positive multiple of 4 (two ranks, two chunks each)\n", T);
      return 2;
    }
  const int threads = max_threads();
  const ModelConfig c = sequence_parallel_bench_model_config();
  const std::string machine = machine_description();
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  const double load = load_average();
  std::printf("machine: %s; load average %.1f at the start; OMP_WAIT_POLICY=%s\n", machine.c_str(), load,
              wait_policy ? wait_policy : "(unset)");
  std::printf("model: %s; 1 row of one document; %d timed step(s) after %d warm-up; SP ranks get %d thread(s) each\n",
              c.describe().c_str(), steps, warmup, std::max(1, threads / 2));
  std::fflush(stdout);
  std::string json = "{\"bench\":\"sequence_parallel\",\"machine\":\"" + json_escape(machine) + "\",\"model\":\"" +
                     json_escape(c.describe()) + "\",\"load_average\":" + std::to_string(load) +
                     ",\"threads\":" + std::to_string(threads) + ",\"steps\":" + std::to_string(steps) + ",\"rows\":[";
  Measured last;
  for (size_t i = 0; i < seqs.size(); i++) {
    const int T = seqs[i];
    const Measured m = measure(T, warmup, steps, threads);
    last = m;
    std::printf(
        "seq_len %6d: one worker %9.1f ms, SP=2 %9.1f ms (x%.2f), ring transfer hidden %5.1f%% (%.1f of %.1f ms "
        "exposed, both ranks), %.1f MB sent/rank%s\n",
        T, m.one_ms, m.sp_ms, m.one_ms / m.sp_ms, 100 * m.hidden, m.exposed_ms, m.transfer_ms, m.mb_sent,
        m.hidden < 0.8 ? "  [below the 80% target]" : "");
    std::fflush(stdout);
    char row[400];
    std::snprintf(row, sizeof row,
                  "%s{\"seq_len\":%d,\"one_worker_ms\":%.2f,\"sp2_ms\":%.2f,\"speedup\":%.3f,\"comm_hidden\":%.4f,"
                  "\"transfer_ms\":%.2f,\"exposed_ms\":%.2f,\"mb_sent_per_rank\":%.2f,\"activations_one_bytes\":%.0f,"
                  "\"activations_sp2_rank_bytes\":%.0f}",
                  i ? "," : "", T, m.one_ms, m.sp_ms, m.one_ms / m.sp_ms, m.hidden, m.transfer_ms, m.exposed_ms,
                  m.mb_sent, m.act_one, m.act_sp);
    json += row;
  }
  // Longest row within the budget: weights, gradients and moments stay whole on every rank; activations
  // (and ring buffers) scale with the tokens a rank holds, T / N. Per-token costs from the last measurement.
  const double budget = budget_gib * 1024 * 1024 * 1024, T = seqs.back();
  const double per_token_1 = last.act_one / T, per_token_2 = last.act_sp / (T / 2);
  const double room = budget - last.fixed_bytes;
  json += "],\"budget_gib\":" + std::to_string(budget_gib) + ",\"longest_row\":{";
  std::printf("longest row in %.1f GiB per worker (weights+grads+moments %.2f GiB):\n", budget_gib,
              last.fixed_bytes / (1 << 30));
  for (int n : {1, 2, 4, 8}) {
    const double per = n == 1 ? per_token_1 : per_token_2;
    const double longest = room > 0 ? n * room / per : 0;
    std::printf("  SP=%d: %9.0f tokens (%s)\n", n, longest, n <= 2 ? "measured per-token bytes" : "formula");
    json += std::string(n > 1 ? "," : "") + "\"sp" + std::to_string(n) + "\":" + std::to_string((long long)longest);
  }
  std::printf(
      "  formula: T_max(N) = N (budget - fixed) / b, b = %.0f bytes per local token (SP rank, ring buffers in)\n",
      per_token_2);
  json += "},\"bytes_per_local_token\":" + std::to_string((long long)per_token_2);
  json += ",\"load_average_end\":" + std::to_string(load_average()) + "}";
  std::printf("%s\n", json.c_str());
  return 0;
}
