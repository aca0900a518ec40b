#include "cuda_probe.h"

#include <dlfcn.h>
#include <algorithm>
#include <sstream>

#ifndef RINGTUNE_CUDA_ARCHS
#define RINGTUNE_CUDA_ARCHS "90"
#endif

namespace rt {

namespace {

constexpr int kNoDeviceStatus = 100;           // CUDA_ERROR_NO_DEVICE
constexpr int kInsufficientDriverStatus = 35;  // CUDA_ERROR_INSUFFICIENT_DRIVER

std::string version_text(int v) {
  std::ostringstream s;
  s << v / 1000 << "." << (v % 1000) / 10;
  return s.str();
}

std::string arch_list(const std::vector<int>& archs) {
  std::ostringstream s;
  for (size_t i = 0; i < archs.size(); ++i) s << (i ? ", " : "") << "sm_" << archs[i];
  return s.str();
}

}  // namespace

std::vector<int> built_cuda_archs() {
  // "80-real;86-real;89-real;90" -> 80, 86, 89, 90 (the suffixes say real code / PTX, not which GPU).
  std::vector<int> archs;
  const std::string text = RINGTUNE_CUDA_ARCHS;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] >= '0' && text[i] <= '9') {
      int v = 0;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9') v = v * 10 + (text[i++] - '0');
      archs.push_back(v);
      while (i < text.size() && text[i] != ';' && text[i] != ',') ++i;  // skip -real / -virtual
    } else {
      ++i;
    }
  }
  std::sort(archs.begin(), archs.end());
  return archs;
}

bool cuda_arch_supported(int cc, const std::vector<int>& built) {
  if (built.empty()) return false;
  if (cc >= built.back()) return true;  // the newest arch's PTX
  for (int b : built)
    if (b / 10 == cc / 10 && b % 10 <= cc % 10) return true;
  return false;
}

const char* cuda_problem_name(CudaProblem p) {
  switch (p) {
    case CudaProblem::kNone: return "none";
    case CudaProblem::kNoDriver: return "no_driver";
    case CudaProblem::kNoDevice: return "no_device";
    case CudaProblem::kDriverTooOld: return "driver_too_old";
    case CudaProblem::kNoSuchDevice: return "no_such_device";
    case CudaProblem::kNoCodeForArch: return "no_code_for_arch";
  }
  return "unknown";
}

CudaProbe classify_cuda(bool driver_loaded, const std::string& load_error, int init_status, int driver_version,
                        int devices, int index, int compute_capability, const std::vector<int>& built,
                        const std::string& device_name) {
  CudaProbe p;
  p.driver_version = driver_version;
  p.devices = devices;
  p.compute_capability = compute_capability;
  p.device_name = device_name;
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
  } else if (compute_capability > 0 && !cuda_arch_supported(compute_capability, built)) {
    p.problem = CudaProblem::kNoCodeForArch;
    m << "cuda:" << index << " (" << (device_name.empty() ? "unnamed GPU" : device_name) << ") has compute capability "
      << compute_capability / 10 << "." << compute_capability % 10 << ", and this build has GPU code only for "
      << arch_list(built) << " (rebuild with CMAKE_CUDA_ARCHITECTURES including " << compute_capability << ")";
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
  using AttributeFn = int (*)(int*, int, int);
  using TotalMemFn = int (*)(size_t*, int);
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
  auto attribute = (AttributeFn)dlsym(lib, "cuDeviceGetAttribute");
  auto total_mem = (TotalMemFn)dlsym(lib, "cuDeviceTotalMem_v2");
  if (!init || !version || !count || !get || !name || !attribute) {
    dlclose(lib);
    return classify_cuda(false, "libcuda.so.1 lacks the driver API entry points", 0, 0, 0, index);
  }
  int driver = 0, devices = 0;
  version(&driver);
  const int status = init(0);
  if (status == 0) count(&devices);
  // The device's name and compute capability, when it exists (75/76: CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
  // and _MINOR).
  int cc = 0;
  size_t memory = 0;
  std::string device_name;
  int dev = 0;
  if (status == 0 && index >= 0 && index < devices && get(&dev, index) == 0) {
    char buf[256] = {0};
    if (name(buf, sizeof buf - 1, dev) == 0) device_name = buf;
    int major = 0, minor = 0;
    if (attribute(&major, 75, dev) == 0 && attribute(&minor, 76, dev) == 0) cc = 10 * major + minor;
    if (total_mem && total_mem(&memory, dev) != 0) memory = 0;
  }
  CudaProbe p = classify_cuda(true, "", status, driver, devices, index, cc, built_cuda_archs(), device_name);
  p.memory_bytes = memory;
  // The library stays loaded: the CUDA runtime uses the same driver for the rest of the process.
  return p;
}

}  // namespace rt
