#pragma once
// Whether this process can use a GPU, asked of the NVIDIA driver itself (libcuda, loaded with dlopen) so the
// CPU build needs no CUDA at all: `--device cuda` fails at once, saying which of the three things is missing.
#include <string>

namespace rt {

// The driver API version the CUDA backend's runtime needs (it is built with CUDA 13.0): 1000*major + 10*minor.
constexpr int kCudaDriverNeeded = 13000;

enum class CudaProblem { kNone, kNoDriver, kNoDevice, kDriverTooOld, kNoSuchDevice };

struct CudaProbe {
  CudaProblem problem = CudaProblem::kNoDriver;
  int driver_version = 0;  // as cuDriverGetVersion reports it; 0 when unknown
  int devices = 0;
  std::string device_name;  // of the device asked for, when usable
  std::string message;      // one sentence for the user; empty when usable
  bool usable() const { return problem == CudaProblem::kNone; }
};

// The decision alone, from what the driver answered (init_status: cuInit's result, 0 = success; 100 =
// CUDA_ERROR_NO_DEVICE; 35 = CUDA_ERROR_INSUFFICIENT_DRIVER).
CudaProbe classify_cuda(bool driver_loaded, const std::string& load_error, int init_status, int driver_version,
                        int devices, int index);

// Loads libcuda.so.1, initialises it and looks at device `index`.
CudaProbe probe_cuda(int index);

const char* cuda_problem_name(CudaProblem p);

}  // namespace rt
