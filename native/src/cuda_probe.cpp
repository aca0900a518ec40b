#include "cuda_probe.h"

#include <dlfcn.h>
#include <sstream>

namespace rt {

namespace {

constexpr int kNoDeviceStatus = 100;           // CUDA_ERROR_NO_DEVICE
constexpr int kInsufficientDriverStatus = 35;  // CUDA_ERROR_INSUFFICIENT_DRIVER

std::string version_text(int v) {
  std::ostringstream s;
  s << v / 1000 << "." << (v % 1000) / 10;
  return s.str();
}

}  // namespace

const char* cuda_problem_name(CudaProblem p) {
  switch (p) {
    case CudaProblem::kNone: return "none";
    case CudaProblem::kNoDriver: return "no_driver";
    case CudaProblem::kNoDevice: return "no_device";
    case CudaProblem::kDriverTooOld: return "driver_too_old";
    case CudaProblem::kNoSuchDevice: return "no_such_device";
  }
  return "unknown";
}

CudaProbe classify_cuda(bool driver_loaded, const std::string& load_error, int init_status, int driver_version,
                        int devices, int index) {
  CudaProbe p;
  p.driver_version = driver_version;
  p.devices = devices;
  std::ostringstream m;
  if (!driver_loaded) {
    p.problem = CudaProblem::kNoDriver;
    m << "no NVIDIA driver: libcuda.so.1 cannot be loaded (" << load_error << ")";
  } else if (init_status == kInsufficientDriverStatus || (driver_version > 0 && driver_version < kCudaDriverNeeded)) {
    p.problem = CudaProblem::kDriverTooOld;
    m << "the NVIDIA driver is too old: it supports CUDA " << (driver_version > 0 ? version_text(driver_version) : "?")
      << ", ringtune's CUDA backend needs CUDA " << version_text(kCudaDriverNeeded) << " or newer (driver 580+)";
  } else if (init_status == kNoDeviceStatus || (init_status == 0 && devices == 0)) {
    p.problem = CudaProblem::kNoDevice;
    m << "no CUDA device: the NVIDIA driver (CUDA " << version_text(driver_version) << ") sees no GPU";
  } else if (init_status != 0) {
    p.problem = CudaProblem::kNoDevice;
    m << "no usable CUDA device: cuInit failed with status " << init_status;
  } else if (index < 0 || index >= devices) {
    p.problem = CudaProblem::kNoSuchDevice;
    m << "no CUDA device " << index << ": the driver sees " << devices << " (cuda:0 to cuda:" << devices - 1 << ")";
  } else {
    p.problem = CudaProblem::kNone;
  }
  p.message = m.str();
  return p;
}

CudaProbe probe_cuda(int index) {
  // The driver's own entry points (cuda.h's prototypes, declared here so no CUDA header is needed).
  using InitFn = int (*)(unsigned);
  using VersionFn = int (*)(int*);
  using CountFn = int (*)(int*);
  using GetFn = int (*)(int*, int);
  using NameFn = int (*)(char*, int, int);
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* e = dlerror();
    return classify_cuda(false, e ? e : "not found", 0, 0, 0, index);
  }
  auto init = (InitFn)dlsym(lib, "cuInit");
  auto version = (VersionFn)dlsym(lib, "cuDriverGetVersion");
  auto count = (CountFn)dlsym(lib, "cuDeviceGetCount");
  auto get = (GetFn)dlsym(lib, "cuDeviceGet");
  auto name = (NameFn)dlsym(lib, "cuDeviceGetName");
  if (!init || !version || !count || !get || !name) {
    dlclose(lib);
    return classify_cuda(false, "libcuda.so.1 lacks the driver API entry points", 0, 0, 0, index);
  }
  int driver = 0, devices = 0;
  version(&driver);
  const int status = init(0);
  if (status == 0) count(&devices);
  CudaProbe p = classify_cuda(true, "", status, driver, devices, index);
  if (p.usable()) {
    int dev = 0;
    char buf[256] = {0};
    if (get(&dev, index) == 0 && name(buf, sizeof buf - 1, dev) == 0) p.device_name = buf;
  }
  // The library stays loaded: the CUDA runtime uses the same driver for the rest of the process.
  return p;
}

}  // namespace rt
