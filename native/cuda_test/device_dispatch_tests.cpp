// The dispatch around the CUDA backend, on any host (the emulator included): cuBLASLt plans made for the
// alignment of the pointers they are run with (the stand-in refuses a misaligned buffer as a GPU would fault on
// it), and a backend on device 1 driven from threads whose current device is 0 (Node's worker threads).
#include <memory>
#include <string>
#include <thread>
#include <vector>
#include "backend.h"
#include "cublaslt_stand_in.h"
#include "cuda_backend.h"
#include "device_buffer.h"
#include "gemm.cuh"
#include "test_util.h"

using namespace rt;
using rt::cuda::test::LtStandInLog;
using rt::test::expect_close;
using rt::test::fill_uniform;

namespace {

// One flat device buffer (as the model's parameters are) and its host twin.
struct Flat {
  const Backend<float>& ops;
  Buffer<float> device;
  std::vector<float> host;
  Flat(const Backend<float>& b, size_t n) : ops(b), device(b.zeros(n)), host(n) {
    fill_uniform(host, 41);
    ops.upload(device->data(), host.data(), n);
  }
  float* at(size_t offset) { return device->data() + offset; }
  std::vector<float> read(size_t offset, size_t n) const {
    std::vector<float> v(n);
    ops.download(v.data(), device->data() + offset, n);
    return v;
  }
};

}  // namespace

TEST(cuda_cublaslt_plans_take_the_alignment_of_the_actual_pointers) {
  LtStandInLog log;
  std::unique_ptr<Backend<float>> gpu =
      cuda::make_cuda_backend(0, cuda::make_cublaslt_gemm_from(cuda::test::lt_stand_in(&log)));
  const Backend<float>& cpu = cpu_backend<float>();
  const int N = 5, I = 12, O = 7;
  // Offsets in floats into one flat buffer: 256-byte aligned first (what cuBLASLt assumes by default), then
  // slices 4 and 8 bytes off it, as a LoRA A/B slice or a later tensor of a flat buffer lands.
  struct Offsets {
    size_t inp, w, out, dinp, dw;
    uint32_t inp_align;
  };
  const Offsets cases[] = {
      {0, 512, 1024, 1536, 2048, 256}, {1, 513, 1025, 1537, 2049, 4}, {2, 514, 1027, 1538, 2050, 8}};
  for (const Offsets& c : cases) {
    Flat flat(*gpu, 4096);
    std::vector<float> host = flat.host;
    gpu->linear_forward(flat.at(c.out), flat.at(c.inp), flat.at(c.w), nullptr, N, I, O);
    cpu.linear_forward(host.data() + c.out, host.data() + c.inp, host.data() + c.w, nullptr, N, I, O);
    CHECK(log.last_plan_b == c.inp_align,
          "the plan for an input at byte offset " << 4 * c.inp << " promised " << log.last_plan_b << " bytes");
    gpu->linear_backward(flat.at(c.dinp), flat.at(c.dw), nullptr, flat.at(c.out), flat.at(c.inp), flat.at(c.w), N, I,
                         O);
    cpu.linear_backward(host.data() + c.dinp, host.data() + c.dw, nullptr, host.data() + c.out, host.data() + c.inp,
                        host.data() + c.w, N, I, O);
    const std::string at = " at input offset " + std::to_string(c.inp);
    CHECK(log.misaligned == 0, log.misaligned << " matmuls ran with a plan made for other alignments" << at);
    for (auto [off, n, name] : {std::tuple{c.out, (size_t)N * O, "out"}, std::tuple{c.dinp, (size_t)N * I, "dinp"},
                                std::tuple{c.dw, (size_t)O * I, "dw"}}) {
      const std::vector<float> got = flat.read(off, n);
      expect_close(std::string(name) + at, got.data(), host.data() + off, n, 1e-5, 1e-5);
    }
  }
  CHECK(log.matmuls == 9 && log.heuristics >= 6, log.matmuls << " matmuls, " << log.heuristics << " plans");
}

TEST(cuda_cublaslt_bf16_operands_at_odd_element_offsets) {
  using cuda::bf16;
  LtStandInLog log;
  std::unique_ptr<cuda::Gemm> lt = cuda::make_cublaslt_gemm_from(cuda::test::lt_stand_in(&log));
  const int M = 6, N = 5, K = 9;
  std::vector<float> a((size_t)M * K + 1), b((size_t)N * K + 1), c((size_t)M * N + 1, 0.f);
  fill_uniform(a, 42);
  fill_uniform(b, 43);
  cuda::test::DeviceBuffer<bf16> da(cuda::test::to_device_type<bf16>(a)), db(cuda::test::to_device_type<bf16>(b));
  cuda::test::DeviceBuffer<float> dc(c);
  // A and B one bf16 (2 bytes) into their buffers, C one float in.
  cuda::gemm(*lt, false, true, M, N, K, 1.f, da.ptr + 1, K, db.ptr + 1, K, 0.f, dc.ptr + 1, N, 0);
  cpu_backend<float>().gemm(false, true, M, N, K, 1.f, a.data() + 1, K, b.data() + 1, K, 0.f, c.data() + 1, N);
  CHECK(log.misaligned == 0 && log.last_plan_a == 2 && log.last_plan_b == 2 && log.last_plan_c == 4,
        "plan alignments " << log.last_plan_a << "/" << log.last_plan_b << "/" << log.last_plan_c);
  const std::vector<float> got = dc.download();
  expect_close("bf16 gemm at odd offsets", got.data() + 1, c.data() + 1, (size_t)M * N, 1e-5, 1e-5);
}

TEST(cuda_backend_on_device_1_runs_from_threads_on_device_0) {
  int devices = 0;
  CHECK(cudaGetDeviceCount(&devices) == cudaSuccess);
  if (devices < 2) {
    rt::test::note("one device: skipped (the emulator has RINGTUNE_EMU_DEVICES, default 2)");
    return;
  }
  CHECK(cudaSetDevice(0) == cudaSuccess);
  std::unique_ptr<Backend<float>> gpu = cuda::make_cuda_backend(1);
  std::unique_ptr<Flat> flat;
  // Each call from a fresh thread, as Node's pool runs them: every thread starts on device 0.
  auto on_new_thread = [](auto f) {
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
  };
  on_new_thread([&] { flat = std::make_unique<Flat>(*gpu, 1024); });
  std::vector<float> host = flat->host;
  on_new_thread([&] { gpu->add(flat->at(0), flat->at(100), flat->at(200), 50); });
  on_new_thread([&] { gpu->linear_forward(flat->at(512), flat->at(0), flat->at(256), nullptr, 4, 8, 6); });
  cpu_backend<float>().add(host.data(), host.data() + 100, host.data() + 200, 50);
  cpu_backend<float>().linear_forward(host.data() + 512, host.data(), host.data() + 256, nullptr, 4, 8, 6);
  std::vector<float> got;
  on_new_thread([&] { got = flat->read(0, 1024); });
  expect_close("device 1 from device-0 threads", got.data(), host.data(), host.size(), 1e-5, 1e-5);
  cudaPointerAttributes attr{};
  CHECK(cudaPointerGetAttributes(&attr, flat->at(0)) == cudaSuccess && attr.device == 1,
        "the buffer is on device " << attr.device);
  on_new_thread([&] { flat.reset(); });  // freed from a thread on device 0
}
