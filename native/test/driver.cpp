// The native test and bench driver: runs without Node.js (a GPU host may have none).
//   ringtune_native_test test [FILTER]   run the op and model tests (FILTER: substring of a test name)
//   ringtune_native_test bench [--steps N]       the CPU training-step benchmark
//   ringtune_native_test bench-lora [--steps N]  memory and step time: full vs LoRA r16 / r64
#include <cstdio>
#include <cstring>
#include <string>
#include "test_util.h"

int run_bench(int argc, char** argv);
int run_lora_bench(int argc, char** argv);

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "test";
  if (mode == "test") return rt::test::run_registered_tests(argc > 2 ? argv[2] : nullptr);
  if (mode == "bench") return run_bench(argc - 2, argv + 2);
  if (mode == "bench-lora") return run_lora_bench(argc - 2, argv + 2);
  std::fprintf(stderr, "usage: %s test [FILTER] | bench [--steps N] | bench-lora [--steps N]\n", argv[0]);
  return 2;
}
