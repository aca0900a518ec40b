// The CUDA backend's test driver (no Node.js needed): every op against the CPU backend, forward and
// backward, in fp32 and bf16, and both GEMM implementations against the CPU sgemm.
//   ringtune_cuda_test [FILTER]   (FILTER: substring of a test name)
#include <cuda_runtime.h>
#include <cstdio>
#include <cstring>
#include <string>
#include "gemm.cuh"
#include "test_util.h"

int main(int argc, char** argv) {
  using namespace rt::test;
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: %s\n", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return 2;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  std::printf("device: %s (sm_%d%d), driver %d, runtime %d\n", prop.name, prop.major, prop.minor, driver, runtime);
  // Which cuBLASLt the GEMM tests and the model use (several copies are often installed), or why none.
  std::string why;
  const auto lt = rt::cuda::make_cublaslt_gemm(&why);
  std::printf("cublasLt: %s\n\n", lt ? lt->name() : ("not loaded: " + why).c_str());
  // a launch error must not leak into the next test
  return run_registered_tests(filter, [] { cudaGetLastError(); });
}
