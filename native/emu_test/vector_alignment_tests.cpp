// 128-bit and 64-bit accesses (vector_io.cuh) need aligned addresses: the GPU faults on a misaligned one, and the
// emulator stops the launch saying so, rather than let a plain memcpy hide it. Planted here: a pack read one
// float past an aligned base, and a rounded pack of 4 bf16 stored one element off. Also: the emulator's launch
// counter counts each launch once.
#include <cuda_runtime.h>
#include <string>
#include <vector>
#include "common.cuh"
#include "test_util.h"
#include "vector_io.cuh"

using namespace rt;
using namespace rt::cuda;

namespace {

// Each thread copies the 128-bit pack at src + offset (floats) to dst.
__global__ void pack_copy_kernel(float* dst, const float* src, int offset) {
  copy16(dst + 4 * threadIdx.x, src + offset + 4 * threadIdx.x);
}

// Each thread stores 4 floats rounded to bf16 at dst + offset (elements).
__global__ void rounded_store_kernel(bf16* dst, int offset) {
  const float v[4] = {1.f, 2.f, 3.f, (float)threadIdx.x};
  store_rounded(dst + offset + 4 * threadIdx.x, v);
}

std::string launch_error(void (*f)(float*, bf16*, int), float* a, bf16* b, int offset) {
  try {
    f(a, b, offset);
    CUDA_LAUNCH_CHECK("planted");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(emu_catches_a_misaligned_vector_access) {
  float* d = nullptr;
  bf16* h = nullptr;
  CUDA_CHECK(cudaMalloc(&d, 256 * sizeof(float)));
  CUDA_CHECK(cudaMalloc(&h, 256 * sizeof(bf16)));
  auto copy = [](float* a, bf16*, int offset) { launch<pack_copy_kernel>(1, 16, 0, nullptr, a + 128, a, offset); };
  auto store = [](float*, bf16* b, int offset) { launch<rounded_store_kernel>(1, 16, 0, nullptr, b, offset); };
  CHECK(launch_error(copy, d, h, 0).empty(), "an aligned pack copy must run");
  CHECK(launch_error(copy, d, h, 4).empty(), "a pack 16 bytes on is still aligned");
  CHECK(launch_error(store, d, h, 4).empty(), "4 bf16 on is 8-byte aligned");
  const std::string e = launch_error(copy, d, h, 1);
  CHECK(has(e, "cudaErrorLaunchFailure") && has(e, "pack_copy_kernel") && has(e, "16-byte aligned"), e);
  const std::string f = launch_error(store, d, h, 1);
  CHECK(has(f, "rounded_store_kernel") && has(f, "8-byte aligned"), f);
  std::vector<bf16> back(8);
  CUDA_CHECK(cudaMemcpy(back.data(), h + 4, sizeof(bf16) * 4, cudaMemcpyDeviceToHost));
  CHECK(__bfloat162float(back[0]) == 1.f && __bfloat162float(back[3]) == 0.f, "the aligned store's values");
  CUDA_CHECK(cudaFree(d));
  CUDA_CHECK(cudaFree(h));
}

TEST(emu_counts_kernel_launches) {
  float* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, 256 * sizeof(float)));
  const unsigned long long before = ringtune_emu_kernel_launches();
  for (int i = 0; i < 3; i++) launch<pack_copy_kernel>(2, 16, 0, nullptr, d + 128, d, 0);
  CUDA_LAUNCH_CHECK("pack_copy_kernel");
  CHECK(ringtune_emu_kernel_launches() - before == 3, ringtune_emu_kernel_launches() - before);
  CUDA_CHECK(cudaFree(d));
}
