#pragma once
// The CUDA backend under the model's op interface (backend.h), fp32 throughout: the checking mode, compared
// op by op with the CPU backend in the CUDA test driver. Every pointer it takes is device memory, except the
// host-side descriptions the interface already carries (segment runs, AdamW constants). Results the
// interface returns by value (a loss sum, a sum of squares) are read back, so those calls synchronise.
// zeros() places the model's flat buffers in device memory; upload/download are the seams with the host.
// Not yet: the bf16 compute copy of training.
#include <memory>
#include "backend.h"

namespace rt::cuda {

class Gemm;

// Selects CUDA device `device` for the calling thread, loads cuBLASLt (else the own GEMM) and returns the backend.
std::unique_ptr<Backend<float>> make_cuda_backend(int device);
// The same over a given GEMM (the tests' cuBLASLt stand-in).
std::unique_ptr<Backend<float>> make_cuda_backend(int device, std::unique_ptr<Gemm> gemm);

}  // namespace rt::cuda
