// LoRA against full training on the native-core bench model (vocab 32000, hidden 512, 8 layers, one row
// of 512 tokens): memory held (parameters, gradients, optimizer state, activations) and step time
// (forward, backward, AdamW) for full, LoRA rank 16 and LoRA rank 64, side by side in one run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>
#include "bench_model.h"
#include "benches.h"
#include "model.h"
#include "parallel.h"
#include "random.h"

using namespace rt;
using Clock = std::chrono::steady_clock;

namespace {

struct Result {
  std::string name;
  MemoryReport mem;
  double step_ms;
};

Result measure(const std::string& name, int rank, int steps) {
  const ModelConfig c = bench_model_config();
  Model<float> m(c);
  m.init_random(0, 0.02);
  if (rank > 0) {
    LoraConfig l;
    l.rank = rank;
    l.alpha = rank;
    l.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    m.enable_lora(l);
  }
  const int T = 512;
  std::vector<int32_t> ids(T), labels(T), pos(T), seg(T, 0);
  for (int i = 0; i < T; i++) {
    ids[i] = (int32_t)(uniform01(3, 0, i) * c.vocab_size);
    pos[i] = i;
  }
  for (int i = 0; i < T; i++) labels[i] = i + 1 < T ? ids[i + 1] : -100;
  const Batch b{1, T, ids.data(), labels.data(), pos.data(), seg.data()};
  auto step = [&] {
    m.zero_grad();
    m.forward_backward(b, {true, false, 0});
    m.adamw_step({1e-4, 0.9, 0.95, 1e-8, 0.1, 1.0});
  };
  step();  // warm-up: allocates the activations
  std::vector<double> ms;
  for (int s = 0; s < steps; s++) {
    const auto t0 = Clock::now();
    step();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return {name, m.memory(), ms[ms.size() / 2]};
}

}  // namespace

int run_lora_bench(int argc, char** argv) {
  int steps = 5;
  for (int i = 0; i < argc; i++)
    if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::atoi(argv[++i]);
  // Interleaved twice (full, r16, r64, full, r16, r64) so drift on a shared machine hits all alike.
  std::vector<Result> first, second;
  for (auto* out : {&first, &second}) {
    out->push_back(measure("full", 0, steps));
    out->push_back(measure("lora r16", 16, steps));
    out->push_back(measure("lora r64", 64, steps));
  }
  std::printf(
      "machine: %d OpenMP threads; model: %s, rows 1 x 512; all 7 linear modules targeted; median of %d steps\n",
      max_threads(), bench_model_config().describe().c_str(), steps);
  std::printf("%-9s %9s %9s %9s %11s %9s %10s %9s %9s\n", "method", "params", "grads", "AdamW", "activations", "total",
              "vs full", "step ms", "speedup");
  const double full_total = first[0].mem.total();
  const double full_ms = std::min(first[0].step_ms, second[0].step_ms);
  std::string json = "{\"bench\":\"lora_step\"";
  for (size_t i = 0; i < first.size(); i++) {
    const Result& r = first[i];
    const double step_ms = std::min(first[i].step_ms, second[i].step_ms);
    std::printf("%-9s %8.0fM %8.0fM %8.0fM %10.0fM %8.0fM %9.1f%% %9.0f %8.2fx\n", r.name.c_str(), r.mem.params / 1e6,
                r.mem.grads / 1e6, r.mem.optimizer / 1e6, r.mem.activations / 1e6, r.mem.total() / 1e6,
                100.0 * r.mem.total() / full_total, step_ms, full_ms / step_ms);
    std::string key = r.name == "full" ? "full" : r.name.substr(5);
    char buf[160];
    std::snprintf(buf, sizeof buf, ",\"%s_bytes\":%zu,\"%s_step_ms\":%.1f", key.c_str(), r.mem.total(), key.c_str(),
                  step_ms);
    json += buf;
  }
  std::printf("targets: LoRA r16 memory <= 35%% of full, step >= 1.3x faster (bytes: B = 1e6 here)\n");
  std::printf("%s}\n", json.c_str());
  return 0;
}
