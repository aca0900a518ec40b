// The GPU library's loader (cuda_device_loader.h) against the library's emulated twin, built beside this
// driver: each way the library can be unusable is a message naming the file, and a backend from it on device 1
// keeps its work on device 1 when called from threads that start on device 0, as Node's pool threads do.
#include <unistd.h>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>
#include "cuda_device_loader.h"
#include "test_util.h"

#ifndef RINGTUNE_CUDA_DEVICE_EMU_LIBRARY
#error "RINGTUNE_CUDA_DEVICE_EMU_LIBRARY must name ringtune_cuda_device_emu.so (native/CMakeLists.txt)"
#endif

using namespace rt;

namespace {

std::string load_error(const std::string& path, const std::string& abi = backend_abi()) {
  const CudaDeviceLibrary lib = load_cuda_device_library(path, abi);
  CHECK(!lib.loaded(), path << " loaded");
  CHECK(lib.error.find(path) != std::string::npos, "the message does not name the file: " << lib.error);
  return lib.error;
}

template <typename F>
void on_new_thread(F f) {
  std::string error;
  std::thread t([&] {
    try {
      f();
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  t.join();
  CHECK(error.empty(), error);
}

}  // namespace

TEST(cuda_library_loader_says_why_a_library_cannot_be_used) {
  const std::string dir = "/tmp/ringtune-loader-" + std::to_string(getpid());
  CHECK(std::system(("mkdir -p " + dir).c_str()) == 0);
  CHECK(load_error(dir + "/ringtune_cuda_device.so").find("is not there: this build has no GPU code") !=
        std::string::npos);
  const std::string junk = dir + "/junk.so";
  std::ofstream(junk) << "not a shared object";
  CHECK(load_error(junk).find("cannot be loaded") != std::string::npos);
  CHECK(load_error("/lib/x86_64-linux-gnu/libm.so.6").find("is not ringtune's CUDA library") != std::string::npos ||
        access("/lib/x86_64-linux-gnu/libm.so.6", R_OK) != 0);
  const std::string other = load_error(RINGTUNE_CUDA_DEVICE_EMU_LIBRARY, "0123456789abcdef");
  // both hashes named: the library's (this build's) and the one the loader was told to expect
  CHECK(other.find("built from other sources") != std::string::npos && other.find(backend_abi()) != std::string::npos &&
            other.find("0123456789abcdef") != std::string::npos,
        other);
  std::system(("rm -rf " + dir).c_str());
  // The path: RINGTUNE_CUDA_LIBRARY, else beside the addon.
  unsetenv("RINGTUNE_CUDA_LIBRARY");
  CHECK(cuda_device_library_path("/opt/rt/build/native/ringtune_native.node") ==
        "/opt/rt/build/native/ringtune_cuda_device.so");
  setenv("RINGTUNE_CUDA_LIBRARY", "/x/y.so", 1);
  CHECK(cuda_device_library_path("/opt/rt/ringtune_native.node") == "/x/y.so");
  unsetenv("RINGTUNE_CUDA_LIBRARY");
}

TEST(cuda_library_backend_on_device_1_stays_there_from_other_threads) {
  std::unique_ptr<Backend<float>> gpu;
  try {
    gpu = make_cuda_device_backend(RINGTUNE_CUDA_DEVICE_EMU_LIBRARY, 1);
  } catch (const std::exception& e) {
    CHECK(false, e.what());
  }
  CHECK(std::string(gpu->name()).rfind("cuda:1 ", 0) == 0, gpu->name());
  // A device that does not exist is the library's error, passed on with what the library is.
  bool refused = false;
  try {
    make_cuda_device_backend(RINGTUNE_CUDA_DEVICE_EMU_LIBRARY, 7);
  } catch (const std::exception& e) {
    refused = std::string(e.what()).find("device 7 (the ringtune CUDA emulator)") != std::string::npos;
    CHECK(refused, e.what());
  }
  CHECK(refused);
  const int n = 64;
  std::vector<float> a(n), b(n), sum(n), got(n);
  for (int i = 0; i < n; i++) a[i] = 0.5f * i, b[i] = 3.f - i, sum[i] = a[i] + b[i];
  Buffer<float> d;
  on_new_thread([&] { d = gpu->zeros(3 * n); });
  on_new_thread([&] { gpu->upload(d->data(), a.data(), n), gpu->upload(d->data() + n, b.data(), n); });
  // Without the backend making device 1 current, this launch runs on device 0 with device 1's pointers.
  on_new_thread([&] { gpu->add(d->data() + 2 * n, d->data(), d->data() + n, n); });
  on_new_thread([&] { gpu->download(got.data(), d->data() + 2 * n, n); });
  for (int i = 0; i < n; i++) CHECK(got[i] == sum[i], "element " << i << ": " << got[i] << " != " << sum[i]);
  on_new_thread([&] { d.reset(); });
}
