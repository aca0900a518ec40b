#pragma once
// A stand-in for cuBLASLt, for the tests of the dispatch (gemm_cublaslt.cpp) on any host, the emulator included:
// the same C entry points, column-major as cuBLASLt defines them, computed by the own GEMM kernel, and strict
// where the real library is: a matmul whose buffers are less aligned than the plan's algorithm was chosen for
// is refused (on a GPU that kernel would fault or read the wrong bytes), and counted.
#include <cstdint>
#include "cublaslt_api.h"
#include "gemm.cuh"

namespace rt::cuda::test {

struct LtStandInLog {
  int heuristics = 0;          // plans made
  int matmuls = 0;             // matmuls run
  int misaligned = 0;          // matmuls refused: a buffer less aligned than its plan promised
  uint32_t last_plan_a = 0;    // MIN_ALIGNMENT_A_BYTES of the last plan (cuBLASLt's A: the row-major B)
  uint32_t last_plan_b = 0;    // ... B (the row-major A)
  uint32_t last_plan_c = 0;    // ... C
  DType last_ab = DType::F32;  // the operand types of the last matmul run
  DType last_c = DType::F32;   // ... and of its result
  int bias_epilogues = 0;      // matmuls that added a bias (CUBLASLT_EPILOGUE_BIAS)
  int residual_adds = 0;       // matmuls whose C (added with beta 1) was not their D: a residual
};

// The stand-in's functions; `log` is where it records, reset by each call.
lt::Api lt_stand_in(LtStandInLog* log);

}  // namespace rt::cuda::test
