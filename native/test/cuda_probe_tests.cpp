// `--device cuda` without a usable GPU: the probe says which thing is missing, from the driver's answers.
#include <dlfcn.h>
#include <string>
#include "cuda_probe.h"
#include "test_util.h"

using namespace rt;

static bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(cuda_probe_names_each_missing_piece) {
  const CudaProbe no_driver = classify_cuda(false, "libcuda.so.1: cannot open shared object file", 0, 0, 0, 0);
  CHECK(no_driver.problem == CudaProblem::kNoDriver);
  CHECK(contains(no_driver.message, "no NVIDIA driver") && contains(no_driver.message, "libcuda.so.1"),
        no_driver.message);

  const CudaProbe old_driver = classify_cuda(true, "", 0, 12040, 1, 0);
  CHECK(old_driver.problem == CudaProblem::kDriverTooOld);
  CHECK(contains(old_driver.message, "too old") && contains(old_driver.message, "CUDA 12.4") &&
            contains(old_driver.message, "CUDA 13.0"),
        old_driver.message);
  // cuInit itself refusing the driver (CUDA_ERROR_INSUFFICIENT_DRIVER) is the same case.
  CHECK(classify_cuda(true, "", 35, 0, 0, 0).problem == CudaProblem::kDriverTooOld);

  const CudaProbe no_device = classify_cuda(true, "", 100, 13000, 0, 0);  // CUDA_ERROR_NO_DEVICE
  CHECK(no_device.problem == CudaProblem::kNoDevice);
  CHECK(contains(no_device.message, "no CUDA device") && contains(no_device.message, "sees no GPU"), no_device.message);

  const CudaProbe beyond = classify_cuda(true, "", 0, 13000, 2, 5);
  CHECK(beyond.problem == CudaProblem::kNoSuchDevice);
  CHECK(contains(beyond.message, "no CUDA device 5") && contains(beyond.message, "cuda:1"), beyond.message);

  const CudaProbe fine = classify_cuda(true, "", 0, 13010, 2, 1);
  CHECK(fine.usable() && fine.message.empty(), fine.message);
}

TEST(cuda_probe_on_this_machine_agrees_with_the_loader) {
  // Where libcuda.so.1 cannot be loaded the probe must say "no driver"; where it can, it must not.
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  const CudaProbe p = probe_cuda(0);
  if (!lib) {
    CHECK(p.problem == CudaProblem::kNoDriver, cuda_problem_name(p.problem) << ": " << p.message);
  } else {
    CHECK(p.problem != CudaProblem::kNoDriver, p.message);
    CHECK(p.usable() == p.message.empty(), p.message);
  }
  ::rt::test::note(std::string("this machine: ") + cuda_problem_name(p.problem) + " " + p.message);
}
