// `--device cuda` without a usable GPU: the probe says which thing is missing, from the driver's answers.
#include <dlfcn.h>
#include <algorithm>
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

  // A GPU the build has no code for: named with its compute capability and the built list.
  const std::vector<int> built = {80, 86, 89, 90};
  const CudaProbe t4 = classify_cuda(true, "", 0, 13000, 1, 0, 75, built, "Tesla T4");
  CHECK(t4.problem == CudaProblem::kNoCodeForArch, cuda_problem_name(t4.problem));
  CHECK(contains(t4.message, "Tesla T4") && contains(t4.message, "compute capability 7.5") &&
            contains(t4.message, "sm_80, sm_86, sm_89, sm_90"),
        t4.message);
  for (int cc : {80, 86, 87, 89, 90, 100, 120})
    CHECK(classify_cuda(true, "", 0, 13000, 1, 0, cc, built, "gpu").usable(), "cc " << cc);
  // sm_90 code alone does not run on an A100; the driver too old still comes first.
  CHECK(classify_cuda(true, "", 0, 13000, 1, 0, 80, {90}, "A100").problem == CudaProblem::kNoCodeForArch);
  CHECK(classify_cuda(true, "", 0, 12020, 1, 0, 75, built, "T4").problem == CudaProblem::kDriverTooOld);
}

TEST(cuda_probe_knows_the_archs_this_build_compiled) {
  // CMake passes its CMAKE_CUDA_ARCHITECTURES; the default covers A100, A10/L4, RTX 40xx and H100/H200.
  const std::vector<int> archs = built_cuda_archs();
  CHECK(!archs.empty());
  std::string text;
  for (int a : archs) text += std::to_string(a) + " ";
  ::rt::test::note("built for: " + text);
  CHECK(std::is_sorted(archs.begin(), archs.end()), text);
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
