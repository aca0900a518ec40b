// The emulator lets a warp run ahead of the block's other warps up to the next barrier, even across warp
// meetings: a kernel that publishes a value in shared memory, meets its own warp (__syncwarp), then reads
// another warp's slot without a __syncthreads reads bytes that warp has not written yet.
#include <cuda_runtime.h>
#include <string>
#include <vector>
#include "common.cuh"
#include "test_util.h"

using namespace rt;
using namespace rt::cuda;

namespace {

constexpr int kThreads = 64;  // two warps

template <bool kBarrier>
__global__ void other_warp_kernel(int* out, int salt) {
  RT_DYNAMIC_SHARED(int, slot);  // filled with 0xff bytes at block start
  const int t = threadIdx.x;
  slot[t] = salt + t;
  __syncwarp();  // a warp meeting: not a block barrier
  if (kBarrier) __syncthreads();
  out[t] = slot[(t + 32) % kThreads];
}

template <bool kBarrier>
int stale_reads(int salt) {
  int* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, sizeof(int) * kThreads));
  launch<other_warp_kernel<kBarrier>>(1, kThreads, sizeof(int) * kThreads, nullptr, d, salt);
  CUDA_LAUNCH_CHECK("other_warp_kernel");
  std::vector<int> h(kThreads);
  CUDA_CHECK(cudaMemcpy(h.data(), d, sizeof(int) * kThreads, cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaFree(d));
  int stale = 0;
  for (int t = 0; t < kThreads; t++) stale += h[t] != salt + (t + 32) % kThreads;
  return stale;
}

}  // namespace

TEST(emu_a_warp_runs_ahead_past_its_warp_meetings) {
  CHECK(stale_reads<true>(100) == 0, "with the barrier every read sees the other warp's value");
  const int stale = stale_reads<false>(200);
  rt::test::note("without the barrier " + std::to_string(stale) + " of 64 threads read the other warp's slot early");
  // the warp that runs first reads all 32 of its slots before the other warp has written any
  CHECK(stale == 32, "expected the first warp's 32 reads to be stale, got " << stale);
}
