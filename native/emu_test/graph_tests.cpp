// The emulator's stream capture and graphs: what a capture records runs only when its graph is launched, a
// replay computes what the eager run did, and the calls a GPU forbids during a capture (a host synchronisation,
// an allocation) are caught there too, naming the call.
#include <cuda_runtime.h>
#include <algorithm>
#include <functional>
#include <string>
#include <thread>
#include <vector>
#include "common.cuh"
#include "test_util.h"

using namespace rt;
using namespace rt::cuda;

namespace {

__global__ void scale_add_kernel(float* y, const float* x, float a, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * y[i] + x[i];
}

// Block sums of x, accumulated with atomics into out[0]: order-dependent in the last bits, as on the GPU.
__global__ void sum_kernel(float* out, const float* x, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) atomicAdd(out, x[i] * x[i]);
}

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// A fixed little sequence: a memset, kernels, a device-to-device copy, event record and wait, and a copy of the
// result into pinned host memory, all on `s`.
void issue_sequence(cudaStream_t s, float* y, float* x, float* sum, float* pinned_out, cudaEvent_t e, int n) {
  CUDA_CHECK(cudaMemsetAsync(sum, 0, sizeof(float), s));
  launch<scale_add_kernel>((n + 63) / 64, 64, 0, s, y, x, 0.5f, n);
  CUDA_LAUNCH_CHECK("scale_add_kernel");
  CUDA_CHECK(cudaEventRecord(e, s));
  CUDA_CHECK(cudaStreamWaitEvent(s, e, 0));
  CUDA_CHECK(cudaMemcpyAsync(x, y, sizeof(float) * n, cudaMemcpyDeviceToDevice, s));
  launch<scale_add_kernel>((n + 63) / 64, 64, 0, s, y, x, 2.f, n);
  CUDA_LAUNCH_CHECK("scale_add_kernel");
  launch<sum_kernel>((n + 63) / 64, 64, 0, s, sum, y, n);
  CUDA_LAUNCH_CHECK("sum_kernel");
  CUDA_CHECK(cudaMemcpyAsync(pinned_out, y, sizeof(float) * n, cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaMemcpyAsync(pinned_out + n, sum, sizeof(float), cudaMemcpyDeviceToHost, s));
}

struct Fixture {
  static constexpr int n = 200;
  cudaStream_t s = nullptr;
  cudaEvent_t e = nullptr;
  float *x = nullptr, *y = nullptr, *sum = nullptr, *out = nullptr;
  Fixture() {
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    CUDA_CHECK(cudaMalloc(&x, sizeof(float) * n));
    CUDA_CHECK(cudaMalloc(&y, sizeof(float) * n));
    CUDA_CHECK(cudaMalloc(&sum, sizeof(float)));
    CUDA_CHECK(cudaMallocHost(&out, sizeof(float) * (n + 1)));
  }
  ~Fixture() {
    cudaFreeHost(out);
    cudaFree(sum);
    cudaFree(y);
    cudaFree(x);
    cudaEventDestroy(e);
    cudaStreamDestroy(s);
  }
  void reset() {
    std::vector<float> h(n);
    // Multiples of small powers of two: every sum below is exact, whatever order the atomics take.
    for (int i = 0; i < n; i++) h[i] = (float)(i % 17 - 8) / 16.f;
    CUDA_CHECK(cudaMemcpyAsync(x, h.data(), sizeof(float) * n, cudaMemcpyHostToDevice, s));
    for (int i = 0; i < n; i++) h[i] = (float)(i % 13) / 8.f - 0.75f;
    CUDA_CHECK(cudaMemcpyAsync(y, h.data(), sizeof(float) * n, cudaMemcpyHostToDevice, s));
  }
  std::vector<float> result() const { return std::vector<float>(out, out + n + 1); }
};

}  // namespace

TEST(emu_graph_replay_equals_the_eager_run) {
  Fixture f;
  f.reset();
  issue_sequence(f.s, f.y, f.x, f.sum, f.out, f.e, f.n);
  CUDA_CHECK(cudaStreamSynchronize(f.s));
  const std::vector<float> eager = f.result();

  // Captured: nothing runs, nothing lands in the host buffer, until the graph is launched.
  f.reset();
  std::fill(f.out, f.out + f.n + 1, -7.f);
  const ringtune_emu_counters before = ringtune_emu_read_counters();
  CUDA_CHECK(cudaStreamBeginCapture(f.s, cudaStreamCaptureModeThreadLocal));
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(f.s, &status));
  CHECK(status == cudaStreamCaptureStatusActive);
  issue_sequence(f.s, f.y, f.x, f.sum, f.out, f.e, f.n);
  cudaGraph_t graph = nullptr;
  CUDA_CHECK(cudaStreamEndCapture(f.s, &graph));
  size_t nodes = 0;
  CUDA_CHECK(cudaGraphGetNodes(graph, nullptr, &nodes));
  CHECK(nodes == 9, "a memset, 3 kernels, an event record and wait, 3 copies: got " + std::to_string(nodes));
  const ringtune_emu_counters captured = ringtune_emu_read_counters();
  CHECK(captured.captured_kernels - before.captured_kernels == 3);
  CHECK(captured.copies_to_host == before.copies_to_host, "a captured copy must not run");
  CHECK(f.out[0] == -7.f, "a captured copy must not run");

  cudaGraphExec_t exec = nullptr;
  CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  CUDA_CHECK(cudaGraphDestroy(graph));  // the executable graph keeps its own nodes
  CUDA_CHECK(cudaGraphLaunch(exec, f.s));
  CUDA_CHECK(cudaStreamSynchronize(f.s));
  CHECK(f.result() == eager, "the replay computes what the eager run did, bit for bit");
  const ringtune_emu_counters replayed = ringtune_emu_read_counters();
  CHECK(replayed.graph_launches - captured.graph_launches == 1);
  CHECK(replayed.graph_kernels - captured.graph_kernels == 3);
  CHECK(replayed.copies_to_host - captured.copies_to_host == 2);

  // Replayed again from fresh inputs: the same result again (the graph reads the buffers, not copies of them).
  f.reset();
  CUDA_CHECK(cudaGraphLaunch(exec, f.s));
  CUDA_CHECK(cudaStreamSynchronize(f.s));
  CHECK(f.result() == eager);
  CUDA_CHECK(cudaGraphExecDestroy(exec));
  CHECK(cudaGraphExecDestroy(exec) == cudaErrorInvalidResourceHandle, "destroyed twice");
  cudaGetLastError();
}

TEST(emu_graph_exec_update_takes_new_arguments_and_refuses_other_kernels) {
  Fixture f;
  float* other = nullptr;
  CUDA_CHECK(cudaMalloc(&other, sizeof(float) * f.n));
  CUDA_CHECK(cudaMemsetAsync(other, 0, sizeof(float) * f.n, f.s));
  auto capture = [&](float a, float* y) {
    CUDA_CHECK(cudaStreamBeginCapture(f.s, cudaStreamCaptureModeThreadLocal));
    launch<scale_add_kernel>((f.n + 63) / 64, 64, 0, f.s, y, f.x, a, f.n);
    CUDA_LAUNCH_CHECK("scale_add_kernel");
    cudaGraph_t g = nullptr;
    CUDA_CHECK(cudaStreamEndCapture(f.s, &g));
    return g;
  };
  f.reset();
  cudaGraph_t first = capture(1.f, f.y);
  cudaGraphExec_t exec = nullptr;
  CUDA_CHECK(cudaGraphInstantiate(&exec, first, 0));
  cudaGraph_t second = capture(0.f, other);  // another pointer and scalar, the same kernel: y' = x
  cudaGraphExecUpdateResultInfo info{};
  CUDA_CHECK(cudaGraphExecUpdate(exec, second, &info));
  CHECK(info.result == cudaGraphExecUpdateSuccess);
  CUDA_CHECK(cudaGraphLaunch(exec, f.s));
  std::vector<float> got(f.n), x(f.n);
  CUDA_CHECK(cudaMemcpy(got.data(), other, sizeof(float) * f.n, cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(x.data(), f.x, sizeof(float) * f.n, cudaMemcpyDeviceToHost));
  CHECK(got == x, "the updated graph wrote the new pointer with the new scalar");

  CUDA_CHECK(cudaStreamBeginCapture(f.s, cudaStreamCaptureModeThreadLocal));
  launch<sum_kernel>(1, 64, 0, f.s, f.sum, f.x, 64);
  CUDA_LAUNCH_CHECK("sum_kernel");
  cudaGraph_t third = nullptr;
  CUDA_CHECK(cudaStreamEndCapture(f.s, &third));
  CHECK(cudaGraphExecUpdate(exec, third, &info) == cudaErrorGraphExecUpdateFailure);
  CHECK(info.result == cudaGraphExecUpdateErrorFunctionChanged);
  const std::string why = cudaGetErrorString(cudaGetLastError());
  CHECK(has(why, "sum_kernel") && has(why, "scale_add_kernel"), why);
  for (cudaGraph_t g : {first, second, third}) CUDA_CHECK(cudaGraphDestroy(g));
  CUDA_CHECK(cudaGraphExecDestroy(exec));
  CUDA_CHECK(cudaFree(other));
}

TEST(emu_capture_catches_a_host_sync_or_an_allocation) {
  Fixture f;
  // Each planted call fails at once, naming itself, and the capture it would have broken fails at its end.
  struct Planted {
    const char* name;
    std::function<cudaError_t()> call;
  };
  std::vector<float> pageable(f.n);
  void* fresh = nullptr;
  const std::vector<Planted> planted = {
      {"cudaMalloc", [&] { return cudaMalloc(&fresh, 64); }},
      {"cudaMallocHost", [&] { return cudaMallocHost(&fresh, 64); }},
      {"cudaFree", [&] { return cudaFree(f.x); }},
      {"cudaMemcpy", [&] { return cudaMemcpy(pageable.data(), f.y, 64, cudaMemcpyDeviceToHost); }},
      {"cudaMemset", [&] { return cudaMemset(f.y, 0, 64); }},
      {"cudaStreamSynchronize", [&] { return cudaStreamSynchronize(f.s); }},
      {"cudaDeviceSynchronize", [&] { return cudaDeviceSynchronize(); }},
      {"cudaMemcpyAsync of pageable host memory",
       [&] { return cudaMemcpyAsync(pageable.data(), f.y, 64, cudaMemcpyDeviceToHost, f.s); }},
  };
  for (const Planted& p : planted) {
    f.reset();
    CUDA_CHECK(cudaStreamBeginCapture(f.s, cudaStreamCaptureModeThreadLocal));
    launch<scale_add_kernel>((f.n + 63) / 64, 64, 0, f.s, f.y, f.x, 0.5f, f.n);
    CUDA_LAUNCH_CHECK("scale_add_kernel");
    const cudaError_t e = p.call();
    const std::string why = cudaGetErrorString(e);
    cudaGetLastError();
    CHECK(e == cudaErrorStreamCaptureUnsupported && has(why, p.name) && has(why, "capturing"),
          std::string(p.name) + ": " + cudaGetErrorName(e) + " " + why);
    cudaGraph_t g = nullptr;
    const cudaError_t end = cudaStreamEndCapture(f.s, &g);
    const std::string end_why = cudaGetErrorString(end);
    cudaGetLastError();
    CHECK(end == cudaErrorStreamCaptureInvalidated && g == nullptr && has(end_why, p.name), end_why);
  }
  // Outside a capture the same calls are fine again; the eager stream was never captured.
  CHECK(cudaStreamSynchronize(f.s) == cudaSuccess);
  CHECK(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeThreadLocal) == cudaErrorStreamCaptureUnsupported,
        "the legacy default stream cannot be captured");
  cudaGetLastError();
  // Another thread's calls are free during a thread-local capture (the gradient staging's thread polls events).
  CUDA_CHECK(cudaStreamBeginCapture(f.s, cudaStreamCaptureModeThreadLocal));
  cudaError_t other_thread = cudaErrorLaunchFailure;
  std::thread([&] { other_thread = cudaMemset(f.y, 0, 64); }).join();
  cudaGraph_t g = nullptr;
  CUDA_CHECK(cudaStreamEndCapture(f.s, &g));
  CHECK(other_thread == cudaSuccess);
  CUDA_CHECK(cudaGraphDestroy(g));
  // An event recorded outside a capture cannot order the captured work.
  CUDA_CHECK(cudaEventRecord(f.e, f.s));
  CUDA_CHECK(cudaStreamBeginCapture(f.s, cudaStreamCaptureModeThreadLocal));
  CHECK(cudaStreamWaitEvent(f.s, f.e, 0) == cudaErrorStreamCaptureIsolation);
  cudaGetLastError();
  CHECK(cudaStreamEndCapture(f.s, &g) == cudaErrorStreamCaptureInvalidated);
  cudaGetLastError();
}
