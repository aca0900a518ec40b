#include "cuda_device_loader.h"

#include <dlfcn.h>
#include <sys/stat.h>
#include <cstdlib>
#include <map>
#include <mutex>
#include "error.h"

#ifndef RINGTUNE_BACKEND_ABI
#error "RINGTUNE_BACKEND_ABI must be defined (native/CMakeLists.txt hashes the interface headers)"
#endif

namespace rt {
namespace {

using Entry = const RingtuneCudaDevice* (*)();

CudaDeviceLibrary open_library(const std::string& path, const std::string& abi) {
  CudaDeviceLibrary lib;
  lib.path = path;
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    lib.error = path +
                " is not there: this build has no GPU code (the CUDA library is built by `make build` where nvcc is "
                "installed; RINGTUNE_CUDA_LIBRARY names another file)";
    return lib;
  }
  // RTLD_LOCAL: its symbols stay out of the process's global scope (they are local to it anyway, exports.map).
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    lib.error = path + " cannot be loaded: " + (why ? why : "unknown dlopen error");
    return lib;
  }
  auto entry = reinterpret_cast<Entry>(dlsym(handle, kCudaDeviceEntry));
  if (!entry) {
    lib.error = path + " is not ringtune's CUDA library: it has no " + kCudaDeviceEntry;
    return lib;
  }
  const RingtuneCudaDevice* table = entry();
  if (!table || !table->abi || abi != table->abi) {
    lib.error = path + " was built from other sources than this addon (backend interface " +
                (table && table->abi ? table->abi : "?") + ", the addon's " + abi +
                "): build both from one tree with `make build`";
    return lib;
  }
  lib.table = table;
  return lib;  // never dlclose'd: the backends it made, and their buffers' deleters, are its code
}

}  // namespace

const char* backend_abi() { return RINGTUNE_BACKEND_ABI; }

std::string this_module_path() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&this_module_path), &info) && info.dli_fname) return info.dli_fname;
  return "";
}

std::string cuda_device_library_path(const std::string& beside) {
  if (const char* p = std::getenv("RINGTUNE_CUDA_LIBRARY"); p && *p) return p;
  const size_t slash = beside.rfind('/');
  return (slash == std::string::npos ? std::string() : beside.substr(0, slash + 1)) + kCudaDeviceLibraryName;
}

CudaDeviceLibrary load_cuda_device_library(const std::string& path, const std::string& abi) {
  static std::mutex mu;
  static std::map<std::string, CudaDeviceLibrary> loaded;
  std::lock_guard<std::mutex> lock(mu);
  auto it = loaded.find(path + '\n' + abi);
  if (it == loaded.end()) it = loaded.emplace(path + '\n' + abi, open_library(path, abi)).first;
  return it->second;
}

std::unique_ptr<Backend<float>> make_cuda_device_backend(const std::string& path, int device, bool bf16) {
  const CudaDeviceLibrary lib = load_cuda_device_library(path, backend_abi());
  if (!lib.loaded()) fail("cuda", lib.error);
  char error[1024] = "";
  std::unique_ptr<Backend<float>> backend(lib.table->make_backend(device, bf16 ? 1 : 0, error, sizeof error));
  if (!backend) fail("cuda", "device ", device, " (", lib.table->build, "): ", error);
  return backend;
}

const nccl::Plane& cuda_device_nccl_plane(const std::string& path) {
  const CudaDeviceLibrary lib = load_cuda_device_library(path, backend_abi());
  if (!lib.loaded()) fail("cuda", lib.error);
  if (!lib.table->nccl) fail("cuda", path, " (", lib.table->build, ") carries no NCCL data plane");
  return *lib.table->nccl;
}

}  // namespace rt
