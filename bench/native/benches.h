#pragma once
// The native benchmarks run by ringtune_native_bench; each takes the arguments after its subcommand.

// One fp32 training step of the bench model against a 1024^3 sgemm measured in the same run.
int run_bench(int argc, char** argv);
// Memory held and step time: full training vs LoRA rank 16 and 64.
int run_lora_bench(int argc, char** argv);
// Sequence parallelism: step time one worker vs SP=2, hidden ring transfer, longest row in a memory budget.
int run_sequence_parallel_bench(int argc, char** argv);
