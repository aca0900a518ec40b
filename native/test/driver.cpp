// The native test and bench driver: runs without Node.js (a GPU host may have none).
//   ringtune_native_test test [FILTER]   run the op and model tests (FILTER: substring of a test name)
//   ringtune_native_test bench [--steps N]       the CPU training-step benchmark
//   ringtune_native_test bench-lora [--steps N]  memory and step time: full vs LoRA r16 / r64
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include "test_util.h"

namespace rt::test {
std::vector<Case>& registry() {
  static std::vector<Case> r;
  return r;
}
static std::vector<std::string> notes;
void note(const std::string& line) { notes.push_back(line); }
}  // namespace rt::test

int run_bench(int argc, char** argv);
int run_lora_bench(int argc, char** argv);

static int run_tests(const char* filter) {
  using namespace rt::test;
  int failed = 0, ran = 0;
  for (const Case& c : registry()) {
    if (filter && !std::strstr(c.name, filter)) continue;
    ran++;
    notes.clear();
    const auto t0 = std::chrono::steady_clock::now();
    std::string error;
    try {
      c.fn();
    } catch (const std::exception& e) {
      error = e.what();
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s %s (%.0f ms)\n", error.empty() ? "ok  " : "FAIL", c.name, ms);
    for (const std::string& n : notes) std::printf("       %s\n", n.c_str());
    if (!error.empty()) {
      std::printf("       %s\n", error.c_str());
      failed++;
    }
  }
  std::printf("\n%d tests, %d failed\n", ran, failed);
  return failed == 0 && ran > 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "test";
  if (mode == "test") return run_tests(argc > 2 ? argv[2] : nullptr);
  if (mode == "bench") return run_bench(argc - 2, argv + 2);
  if (mode == "bench-lora") return run_lora_bench(argc - 2, argv + 2);
  std::fprintf(stderr, "usage: %s test [FILTER] | bench [--steps N] | bench-lora [--steps N]\n", argv[0]);
  return 2;
}
