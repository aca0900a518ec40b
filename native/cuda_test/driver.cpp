// The CUDA backend's test driver (no Node.js needed): every op against the CPU backend, forward and
// backward, in fp32 and bf16, and both GEMM implementations against the CPU sgemm.
//   ringtune_cuda_test [FILTER]   (FILTER: substring of a test name)
#include <cuda_runtime.h>
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
  std::printf("device: %s (sm_%d%d), driver %d, runtime %d\n\n", prop.name, prop.major, prop.minor, driver, runtime);
  int failed = 0, ran = 0;
  for (const Case& c : registry()) {
    if (filter && !std::strstr(c.name, filter)) continue;
    ran++;
    notes.clear();
    const auto t0 = std::chrono::steady_clock::now();
    std::string error;
    try {
      c.fn();
    } catch (const std::exception& ex) {
      error = ex.what();
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s %s (%.0f ms)\n", error.empty() ? "ok  " : "FAIL", c.name, ms);
    for (const std::string& n : notes) std::printf("       %s\n", n.c_str());
    if (!error.empty()) {
      std::printf("       %s\n", error.c_str());
      failed++;
      cudaGetLastError();  // a launch error must not leak into the next test
    }
  }
  std::printf("\n%d tests, %d failed\n", ran, failed);
  return failed == 0 && ran > 0 ? 0 : 1;
}
