#pragma once
// Row-major GEMM on the device, the CPU backend's gemm() convention:
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C,  op = transpose when ta / tb.
// Epilogues: + bias[N] (a linear layer's bias, C's type) and + R[M,N] (a residual, C's type, leading dimension
// ldr; beta must be 0 then, and R may be C itself), added in the GEMM instead of by a kernel of their own.
// A and B are fp32 (checking mode, fp32 math) or bf16 (training: tensor cores, fp32 accumulation); C is fp32
// or bf16 (fp32 for parameter gradients accumulated with beta = 1).
// Two implementations behind one interface: cuBLASLt, found at run time with dlopen (no cuBLAS headers or
// libraries at build time), and an own tensor-core kernel (wmma bf16 -> fp32) used when it is absent.
#include <memory>
#include <string>
#include "common.cuh"

namespace rt::cuda {

enum class DType { F32, BF16 };

struct GemmArgs {
  bool ta = false, tb = false;
  int M = 0, N = 0, K = 0;
  float alpha = 1.f;
  const void* A = nullptr;
  int lda = 0;
  const void* B = nullptr;
  int ldb = 0;
  float beta = 0.f;
  void* C = nullptr;
  int ldc = 0;
  DType ab = DType::BF16;          // type of A and B
  DType c = DType::BF16;           // type of C
  const void* bias = nullptr;      // (N) added to every row
  const void* residual = nullptr;  // (M, N) added, leading dimension ldr
  int ldr = 0;
};

class Gemm {
 public:
  virtual ~Gemm() = default;
  virtual const char* name() const = 0;
  virtual void run(const GemmArgs& g, cudaStream_t stream) = 0;
};

// Validates sizes and leading dimensions; every implementation calls it first.
void check_gemm_args(const GemmArgs& g, const char* impl);

std::unique_ptr<Gemm> make_own_gemm();
// Null when libcublasLt cannot be loaded, and always under the CPU emulator (cuBLASLt runs only on a GPU);
// *why (when not null) says what was tried.
std::unique_ptr<Gemm> make_cublaslt_gemm(std::string* why = nullptr);
namespace lt {
struct Api;
}
// cuBLASLt over the given functions (the tests' stand-in, which runs on the emulator).
std::unique_ptr<Gemm> make_cublaslt_gemm_from(const lt::Api& api);
// cuBLASLt when found, else the own kernel; RINGTUNE_GEMM=own forces the own kernel.
std::unique_ptr<Gemm> make_gemm();
// True when this build runs on the CPU emulator (native/emu) rather than a GPU.
constexpr bool kEmulated =
#ifdef RINGTUNE_CUDA_EMU
    true;
#else
    false;
#endif

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::F32;
}
template <>
constexpr DType dtype_of<bf16>() {
  return DType::BF16;
}

// Typed convenience: gemm(g, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, stream)
template <typename TAB, typename TC>
inline void gemm(Gemm& impl, bool ta, bool tb, int M, int N, int K, float alpha, const TAB* A, int lda, const TAB* B,
                 int ldb, float beta, TC* C, int ldc, cudaStream_t stream) {
  GemmArgs g;
  g.ta = ta, g.tb = tb, g.M = M, g.N = N, g.K = K, g.alpha = alpha, g.A = A, g.lda = lda, g.B = B, g.ldb = ldb;
  g.beta = beta, g.C = C, g.ldc = ldc, g.ab = dtype_of<TAB>(), g.c = dtype_of<TC>();
  impl.run(g, stream);
}

}  // namespace rt::cuda
