#pragma once
// The CUDA backend under the model's op interface (backend.h), in one of two precisions: fp32 throughout (the
// checking mode, compared op by op with the CPU backend in the CUDA test driver), or bf16 compute over fp32
// storage (training; bf16_compute.h). Every pointer it takes is device memory, except the
// host-side descriptions the interface already carries (segment runs, AdamW constants). Results the
// interface returns by value (a loss sum, a sum of squares) are read back, so those calls synchronise.
// zeros() places the model's flat buffers in device memory; upload/download are the seams with the host.
#include <memory>
#include "backend.h"

namespace rt::cuda {

class Gemm;

// fp32: every op in fp32. bf16: GEMMs on bf16 operands (a bf16 compute copy of the weights) with fp32
// accumulation, attention on bf16 q/k/v, everything else fp32 (bf16_compute.h).
enum class Precision { fp32, bf16 };

// A training step's device work replayed as CUDA graphs from its second step on (step_graph.h). automatic: the
// environment's RINGTUNE_CUDA_GRAPHS (on / off) if set, else on for a GPU and off under the emulator.
enum class StepGraphMode { automatic, off, on };
bool step_graphs_on(StepGraphMode mode);

// Selects CUDA device `device` for the calling thread, loads cuBLASLt (else the own GEMM) and returns the backend,
// whose work runs on a stream of its own.
std::unique_ptr<Backend<float>> make_cuda_backend(int device, Precision precision = Precision::fp32,
                                                  StepGraphMode graphs = StepGraphMode::automatic);
// The same over a given GEMM (the tests' cuBLASLt stand-in).
std::unique_ptr<Backend<float>> make_cuda_backend(int device, std::unique_ptr<Gemm> gemm,
                                                  Precision precision = Precision::fp32,
                                                  StepGraphMode graphs = StepGraphMode::automatic);

}  // namespace rt::cuda
