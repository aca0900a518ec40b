#pragma once
// Finds and loads ringtune_cuda_device.so (cuda_device_abi.h) the first time a model is asked for on a GPU:
// the library beside the addon, or the file RINGTUNE_CUDA_LIBRARY names. Every way it can be unusable (absent,
// not loadable, not ringtune's, built from other sources) is a message naming the file and what to do.
#include <memory>
#include <string>
#include "backend.h"
#include "cuda_device_abi.h"

namespace rt {

struct CudaDeviceLibrary {
  std::string path;                           // the file looked at
  const RingtuneCudaDevice* table = nullptr;  // null when it cannot be used
  std::string error;                          // why not, one sentence naming the file; empty when loaded
  bool loaded() const { return table != nullptr; }
};

// The file name of the library, looked for beside the addon.
constexpr const char* kCudaDeviceLibraryName = "ringtune_cuda_device.so";

// RINGTUNE_CUDA_LIBRARY when set, else kCudaDeviceLibraryName in the folder of `beside` (a file path).
std::string cuda_device_library_path(const std::string& beside);

// The folder of the shared object (or executable) holding this code: where the addon looks for the library.
std::string this_module_path();

// Loads the library at `path` once per process (later calls return the first answer: a loaded library is never
// unloaded, it owns the code of every backend it made) and checks its interface hash against `abi`.
CudaDeviceLibrary load_cuda_device_library(const std::string& path, const std::string& abi);

// The interface hash this build was compiled with (RINGTUNE_BACKEND_ABI).
const char* backend_abi();

// The CUDA backend on device `device` from the library at `path`, computing in bf16 or fp32; throws rt::Error
// with the loader's or the library's reason.
std::unique_ptr<Backend<float>> make_cuda_device_backend(const std::string& path, int device, bool bf16 = false);

// The NCCL data plane of the library at `path` (over the same CUDA runtime as its backends); throws rt::Error with
// the loader's reason.
const nccl::Plane& cuda_device_nccl_plane(const std::string& path);

}  // namespace rt
