// The emulator's asynchronous copies into shared memory (cuda_pipeline.h): a copy lands when its thread waits
// for its group, not before; a wait that leaves the newest groups pending lands only the older ones; the zero
// fill; and copies the GPU would fault on (into global memory, from a host pointer, misaligned) stop the launch.
#include <cuda_pipeline.h>
#include <cmath>
#include <string>
#include <vector>
#include "common.cuh"
#include "test_util.h"

using namespace rt;
using namespace rt::cuda;

namespace {

enum Mode { kWaitAll, kNoWait, kWaitAllButNewest, kZeroFill };

// Each of 32 threads copies its 4 floats of src into shared memory in two groups (the first two floats, then
// the last two), waits as the mode says, and writes what its shared slots hold to out.
__global__ void async_kernel(float* out, const float* src, int mode) {
  RT_DYNAMIC_SHARED(float, buf);
  const int t = threadIdx.x;
  __pipeline_memcpy_async(buf + 4 * t, src + 4 * t, 8, mode == kZeroFill ? 4 : 0);
  __pipeline_commit();
  __pipeline_memcpy_async(buf + 4 * t + 2, src + 4 * t + 2, 8);
  __pipeline_commit();
  if (mode == kWaitAll || mode == kZeroFill) __pipeline_wait_prior(0);
  if (mode == kWaitAllButNewest) __pipeline_wait_prior(1);
  for (int e = 0; e < 4; e++) out[4 * t + e] = buf[4 * t + e];
}

__global__ void async_into_global_kernel(float* out, const float* src) {
  __pipeline_memcpy_async(out + 4 * threadIdx.x, src + 4 * threadIdx.x, 16);
  __pipeline_commit();
  __pipeline_wait_prior(0);
}

__global__ void async_misaligned_kernel(float* out, const float* src) {
  RT_DYNAMIC_SHARED(float, buf);
  __pipeline_memcpy_async(buf + 4 * threadIdx.x, src + 4 * threadIdx.x + 1, 16);
  __pipeline_commit();
  __pipeline_wait_prior(0);
  out[threadIdx.x] = buf[4 * threadIdx.x];
}

std::vector<float> run(int mode) {
  std::vector<float> src(128);
  for (int i = 0; i < 128; i++) src[i] = (float)(i + 1);
  float *d_src = nullptr, *d_out = nullptr;
  CUDA_CHECK(cudaMalloc(&d_src, 128 * sizeof(float)));
  CUDA_CHECK(cudaMalloc(&d_out, 128 * sizeof(float)));
  CUDA_CHECK(cudaMemcpy(d_src, src.data(), 128 * sizeof(float), cudaMemcpyHostToDevice));
  launch<async_kernel>(1, 32, 128 * sizeof(float), nullptr, d_out, d_src, mode);
  CUDA_LAUNCH_CHECK("async_kernel");
  std::vector<float> out(128);
  CUDA_CHECK(cudaMemcpy(out.data(), d_out, 128 * sizeof(float), cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaFree(d_src));
  CUDA_CHECK(cudaFree(d_out));
  return out;
}

template <typename F>
std::string launch_error(F f) {
  try {
    f();
    CUDA_LAUNCH_CHECK("planted");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(emu_async_copies_land_at_their_wait) {
  const std::vector<float> all = run(kWaitAll), none = run(kNoWait), older = run(kWaitAllButNewest),
                           zfill = run(kZeroFill);
  for (int i = 0; i < 128; i++) {
    const bool first_group = i % 4 < 2;
    CHECK(all[i] == (float)(i + 1), "waited for: element " << i << " is " << all[i]);
    CHECK(std::isnan(none[i]), "never waited for: element " << i << " landed anyway (" << none[i] << ")");
    CHECK(first_group ? older[i] == (float)(i + 1) : std::isnan(older[i]),
          "the newest group left pending: element " << i << " is " << older[i]);
    CHECK(zfill[i] == (i % 4 == 1 ? 0.f : (float)(i + 1)), "zero fill: element " << i << " is " << zfill[i]);
  }
}

TEST(emu_async_copies_are_checked) {
  float *d_src = nullptr, *d_out = nullptr;
  CUDA_CHECK(cudaMalloc(&d_src, 128 * sizeof(float)));
  CUDA_CHECK(cudaMalloc(&d_out, 128 * sizeof(float)));
  const std::string global =
      launch_error([&] { launch<async_into_global_kernel>(1, 32, 0, nullptr, d_out, (const float*)d_src); });
  CHECK(global.find("not in the block's dynamic shared memory") != std::string::npos, global);
  const std::string misaligned = launch_error(
      [&] { launch<async_misaligned_kernel>(1, 32, 128 * sizeof(float), nullptr, d_out, (const float*)d_src); });
  CHECK(misaligned.find("not aligned") != std::string::npos, misaligned);
  CUDA_CHECK(cudaFree(d_src));
  CUDA_CHECK(cudaFree(d_out));
}
