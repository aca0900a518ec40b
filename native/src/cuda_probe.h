#pragma once
// Whether this process can use a GPU, asked of the NVIDIA driver itself (libcuda, loaded with dlopen) so the
// CPU build needs no CUDA at all: `--device cuda` fails at once, saying which thing is missing.
#include <string>
#include <vector>

namespace rt {

// The driver API version the CUDA backend's runtime needs (it is built with CUDA 13.0): 1000*major + 10*minor.
constexpr int kCudaDriverNeeded = 13000;

enum class CudaProblem { kNone, kNoDriver, kNoDevice, kDriverTooOld, kNoSuchDevice, kNoCodeForArch };

// The GPU architectures this build has machine code for, as 10*major + minor (80 = sm_80), from
// RINGTUNE_CUDA_ARCHS (CMake passes its CMAKE_CUDA_ARCHITECTURES). The newest one also carries PTX, which the
// driver compiles for any newer GPU.
std::vector<int> built_cuda_archs();

// Whether code built for `built` runs on a GPU of compute capability `cc` (10*major + minor): machine code for
// sm_XY runs on sm_XZ with Z >= Y, and the newest arch's PTX runs on anything newer.
bool cuda_arch_supported(int cc, const std::vector<int>& built);

struct CudaProbe {
  CudaProblem problem = CudaProblem::kNoDriver;
  int driver_version = 0;  // as cuDriverGetVersion reports it; 0 when unknown
  int devices = 0;
  int compute_capability = 0;  // 10*major + minor of the device asked for; 0 when unknown
  std::string device_name;     // of the device asked for, when it exists
  size_t memory_bytes = 0;     // its total memory (cuDeviceTotalMem); 0 when unknown
  std::string message;         // one sentence for the user; empty when usable
  bool usable() const { return problem == CudaProblem::kNone; }
};

// The decision alone, from what the driver answered (init_status: cuInit's result, 0 = success; 100 =
// CUDA_ERROR_NO_DEVICE; 35 = CUDA_ERROR_INSUFFICIENT_DRIVER; compute_capability: of device `index`, 0 when
// unknown, checked against `built`).
CudaProbe classify_cuda(bool driver_loaded, const std::string& load_error, int init_status, int driver_version,
                        int devices, int index, int compute_capability = 0,
                        const std::vector<int>& built = built_cuda_archs(), const std::string& device_name = "");

// Loads libcuda.so.1, initialises it and looks at device `index`.
CudaProbe probe_cuda(int index);

const char* cuda_problem_name(CudaProblem p);

}  // namespace rt
