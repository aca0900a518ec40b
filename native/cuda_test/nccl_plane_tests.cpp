// The NCCL data plane the GPU library carries (its table's `nccl`, over the library's own CUDA runtime), reached
// through the loader as the addon reaches it for `cuda:N`: each rank's model buffers come from the library's
// backend on its device, and the collectives sum them there.
//   Under the emulator: the library's emulated twin with the project's stand-in libnccl.so.2, named by
//   RINGTUNE_NCCL_LIB, two ranks on emulated devices 0 and 1.
//   On a GPU: the library `make build` made beside this driver (RINGTUNE_CUDA_LIBRARY overrides: a bundle's), one
//   rank per GPU up to two, with the libnccl.so.2 the loader finds (RINGTUNE_NCCL_LIB, a pip wheel's, the
//   system's); without one the test prints why and checks only the library's plane.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>
#include "cuda_device_loader.h"
#include "nccl_plane.h"
#include "test_util.h"

#ifdef RINGTUNE_CUDA_EMU
#ifndef RINGTUNE_NCCL_STANDIN_LIBRARY
#error "RINGTUNE_NCCL_STANDIN_LIBRARY must name the stand-in libnccl.so.2 (native/CMakeLists.txt)"
#endif
#else
#include <cuda_runtime.h>
#ifndef RINGTUNE_CUDA_DEVICE_BUILT_LIBRARY
#error "RINGTUNE_CUDA_DEVICE_BUILT_LIBRARY must name ringtune_cuda_device.so (native/CMakeLists.txt)"
#endif
#endif

using namespace rt;

namespace {

struct Setup {
  std::string library;
  int ranks;
};

Setup setup() {
#ifdef RINGTUNE_CUDA_EMU
  setenv("RINGTUNE_NCCL_LIB", RINGTUNE_NCCL_STANDIN_LIBRARY, 1);
  return {RINGTUNE_CUDA_DEVICE_EMU_LIBRARY, 2};
#else
  const char* forced = std::getenv("RINGTUNE_CUDA_LIBRARY");
  int gpus = 0;
  if (cudaGetDeviceCount(&gpus) != cudaSuccess) gpus = 0;
  return {forced && *forced ? forced : RINGTUNE_CUDA_DEVICE_BUILT_LIBRARY, gpus < 2 ? 1 : 2};
#endif
}

// Rank r's value at element i, and the sum over `size` ranks.
float value(int r, size_t i) { return 0.25f * (float)(i % 13) + 3.f * (float)r - 1.f; }
float sum_of(int size, size_t i) {
  float s = 0;
  for (int r = 0; r < size; r++) s += value(r, i);
  return s;
}

}  // namespace

TEST(cuda_library_nccl_plane_sums_its_backends_buffers_on_their_devices) {
  const Setup s = setup();
  const nccl::Plane* plane = nullptr;
  try {
    plane = &cuda_device_nccl_plane(s.library);
  } catch (const std::exception& e) {
    CHECK(false, e.what());
  }
  const nccl::Probe probe = plane->probe();
#ifdef RINGTUNE_CUDA_EMU
  CHECK(std::string(plane->runtime()) == "the ringtune CUDA emulator", plane->runtime());
  CHECK(probe.available && probe.path == RINGTUNE_NCCL_STANDIN_LIBRARY, probe.path << probe.reason);
#else
  CHECK(std::string(plane->runtime()) == "the CUDA runtime", plane->runtime());
  if (!probe.available) {
    std::printf("nccl: not found, collectives not run (%s)\n", probe.reason.c_str());
    return;
  }
#endif
  std::printf("nccl: %s (version %d), %d rank(s), through %s\n", probe.path.c_str(), probe.version, s.ranks,
              s.library.c_str());

  // 31 elements: the reduce-scatter and all-gather of an uneven cut (a grouped reduce/broadcast per segment).
  const size_t n = 31;
  const nccl::UniqueId id = plane->unique_id();
  std::vector<std::vector<float>> summed(s.ranks, std::vector<float>(n)), gathered = summed;
  std::vector<std::string> errors(s.ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < s.ranks; r++) {
    threads.emplace_back([&, r] {
      try {
        std::unique_ptr<Backend<float>> gpu = make_cuda_device_backend(s.library, r);
        Buffer<float> a = gpu->zeros(n), b = gpu->zeros(n);
        std::vector<float> mine(n);
        for (size_t i = 0; i < n; i++) mine[i] = value(r, i);
        gpu->upload(a->data(), mine.data(), n);
        gpu->upload(b->data(), mine.data(), n);
        std::shared_ptr<nccl::Collectives> comm = plane->connect(id, r, s.ranks, 30000, r);
        CHECK(comm->rank() == r && comm->size() == s.ranks);
        comm->run(nccl::Op::AllReduce, a->data(), n, nullptr);
        // ZeRO-1's pair: each rank keeps its summed segment, then every rank gets every segment back.
        comm->run(nccl::Op::ReduceScatter, b->data(), n, nullptr);
        comm->run(nccl::Op::AllGather, b->data(), n, nullptr);
        comm->finish(nullptr, 30000);
        gpu->download(summed[r].data(), a->data(), n);
        gpu->download(gathered[r].data(), b->data(), n);
        comm->abort();
        CHECK(comm->aborted());
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < s.ranks; r++) {
    CHECK(errors[r].empty(), "rank " << r << ": " << errors[r]);
    for (size_t i = 0; i < n; i++) {
      CHECK(summed[r][i] == sum_of(s.ranks, i), "rank " << r << " all-reduce [" << i << "] " << summed[r][i]);
      CHECK(gathered[r][i] == sum_of(s.ranks, i),
            "rank " << r << " reduce-scatter + all-gather [" << i << "] " << gathered[r][i]);
    }
  }
}
