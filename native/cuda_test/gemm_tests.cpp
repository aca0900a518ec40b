// Both GEMM implementations (cuBLASLt when the library loads, the own kernel always) against the CPU sgemm,
// every transpose combination, odd sizes, alpha and beta, fp32 and bf16 inputs, fp32 and bf16 outputs.
#include <cstdlib>
#include <memory>
#include <sstream>
#include "blas.h"
#include "device_buffer.h"
#include "gemm.cuh"
#include "test_util.h"

using namespace rt::test;
using namespace rt::cuda::test;
namespace cu = rt::cuda;
using cu::bf16;

template <typename TAB, typename TC>
static void gemm_case(cu::Gemm& impl, bool ta, bool tb, int M, int N, int K, Tol tol) {
  const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;  // padded leading dimensions
  std::vector<float> A((size_t)(ta ? K : M) * lda), B((size_t)(tb ? N : K) * ldb), C((size_t)M * ldc);
  fill_uniform(A, 30);
  fill_uniform(B, 31);
  fill_uniform(C, 32);
  DeviceBuffer<TAB> dA(to_device_type<TAB>(A)), dB(to_device_type<TAB>(B));
  DeviceBuffer<TC> dC(to_device_type<TC>(C));
  const float alpha = 0.7f, beta = 0.3f;
  cu::gemm(impl, ta, tb, M, N, K, alpha, dA.ptr, lda, dB.ptr, ldb, beta, dC.ptr, ldc, 0);
  rt::gemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
  std::ostringstream s;
  s << impl.name() << " " << precision_name<TAB>() << "->" << precision_name<TC>() << " ta=" << ta << " tb=" << tb
    << " " << M << "x" << N << "x" << K;
  const std::vector<float> got = to_floats(dC.download());
  const double d = expect_close(s.str(), got.data(), C.data(), C.size(), tol.abs, tol.rel);
  s << ": max diff " << d;
  note(s.str());
}

static void all_cases(cu::Gemm& impl) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      gemm_case<float, float>(impl, ta, tb, 67, 45, 83, {1e-4, 1e-4});
      gemm_case<bf16, float>(impl, ta, tb, 130, 70, 200, {1e-3, 1e-3});
      gemm_case<bf16, bf16>(impl, ta, tb, 64, 128, 96, {2e-2, 8e-3});
    }
  gemm_case<bf16, float>(impl, false, true, 1024, 768, 768, {2e-3, 1e-3});  // a model-shaped one
}

TEST(cuda_gemm_own_matches_cpu_sgemm) {
  std::unique_ptr<cu::Gemm> g = cu::make_own_gemm();
  all_cases(*g);
}

TEST(cuda_gemm_cublaslt_matches_cpu_sgemm) {
  std::string why;
  std::unique_ptr<cu::Gemm> g = cu::make_cublaslt_gemm(&why);
  if (cu::kEmulated) {  // cuBLASLt is checked on a GPU; the emulator must refuse it, not crash inside it
    CHECK(!g && why.find("emulator") != std::string::npos, why);
    return;
  }
  CHECK(g, "cuBLASLt did not load: " << why << " (set RINGTUNE_CUBLASLT or LD_LIBRARY_PATH)");
  all_cases(*g);
}

// make_gemm's choice: cuBLASLt where it loads on a GPU, the own kernels under the emulator, when cuBLASLt is
// absent, or when RINGTUNE_GEMM=own forces them.
TEST(cuda_gemm_dispatch) {
  const std::string own = cu::make_own_gemm()->name();
  const char* saved = std::getenv("RINGTUNE_GEMM");
  const std::string saved_value = saved ? saved : "";
  unsetenv("RINGTUNE_GEMM");
  const std::string chosen = cu::make_gemm()->name();
  std::string why;
  const bool lt = cu::make_cublaslt_gemm(&why) != nullptr;
  setenv("RINGTUNE_GEMM", "own", 1);
  const std::string forced = cu::make_gemm()->name();
  if (saved) setenv("RINGTUNE_GEMM", saved_value.c_str(), 1);
  else unsetenv("RINGTUNE_GEMM");
  note("make_gemm: " + chosen + (lt ? "" : " (cuBLASLt: " + why + ")"));
  CHECK(forced == own, forced);
  if (cu::kEmulated) CHECK(!lt && chosen == own, chosen);
  if (lt) CHECK(chosen.rfind("cuBLASLt", 0) == 0, chosen);
  if (!lt) CHECK(chosen == own, chosen);
}
