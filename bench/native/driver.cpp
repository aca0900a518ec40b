// The native bench driver: runs without Node.js (a GPU host may have none).
//   ringtune_native_bench step [--steps N]   one CPU training step of the bench model vs a same-run sgemm
//   ringtune_native_bench lora [--steps N]   memory and step time: full vs LoRA r16 / r64
//   ringtune_native_bench sp [--seq 8192,16384] [--steps N] [--warmup W] [--budget-gib G]   SP=2 vs 1 worker
#include <cstdio>
#include <string>

#include "benches.h"

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "step") return run_bench(argc - 2, argv + 2);
  if (mode == "lora") return run_lora_bench(argc - 2, argv + 2);
  if (mode == "sp") return run_sequence_parallel_bench(argc - 2, argv + 2);
  std::fprintf(stderr, "usage: %s step [--steps N] | lora [--steps N] | sp [--seq A,B] [--steps N]\n", argv[0]);
  return 2;
}
