// The CUDA emulator's own checks: each fault it promises to catch is planted in a small kernel and must be
// reported by the launch check, naming what it found; and the scheduling that exposes races does expose one.
#include <cuda_runtime.h>
#include <mma.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#include <string>
#include <thread>
#include <vector>
#include "common.cuh"
#include "test_util.h"

using namespace rt;
using namespace rt::cuda;

namespace {

// Each thread publishes salt + t in shared memory, then reads its neighbour's slot. With the barrier every
// read sees this launch's value; without it a neighbour that has not run yet leaves the previous launch's.
template <bool kBarrier>
__global__ void neighbour_kernel(int* out, int salt) {
  __shared__ int slot[128];
  const int t = threadIdx.x;
  slot[t] = salt + t;
  if (kBarrier) __syncthreads();
  out[t] = slot[(t + 1) % blockDim.x];
}

__global__ void write_kernel(float* p, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) p[i] = (float)i;
}

// Writes one element past the n it is given (the planted off-by-one).
__global__ void off_by_one_kernel(float* p, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= n) p[i] = 1.f;
}

__global__ void warp_sum_kernel(float* out, const float* in) {
  float v = in[threadIdx.x];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const unsigned odd = __ballot_sync(0xffffffffu, threadIdx.x & 1);
  out[threadIdx.x] = v + (odd == 0xaaaaaaaau ? 0.f : 1000.f);
}

// Lane 0 leaves before the shuffle the others wait in: a deadlock on the GPU, an error here.
__global__ void early_exit_shuffle_kernel(float* out) {
  if (threadIdx.x == 0) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.f, 1);
}

__global__ void dynamic_shared_kernel(float* out) {
  RT_DYNAMIC_SHARED(float, buf);
  out[threadIdx.x] = buf[threadIdx.x];  // never written: the emulator's fill (NaN)
  __syncthreads();
  buf[threadIdx.x] = (float)threadIdx.x;
  __syncthreads();
  out[blockDim.x + threadIdx.x] = buf[blockDim.x - 1 - threadIdx.x];
}

// One 16 x 16 x 16 tensor-core product from a bf16 tile `offset` elements into shared memory.
__global__ void wmma_kernel(float* out, int offset) {
  using namespace nvcuda;
  __shared__ __align__(32) bf16 tile[16 * 16 + 16];
  for (int i = threadIdx.x; i < 16 * 16 + 16; i += 32) tile[i] = __float2bfloat16_rn((float)(i % 7));
  __syncwarp();
  wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> b;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
  wmma::fill_fragment(c, 1.f);
  wmma::load_matrix_sync(a, tile + offset, 16);
  wmma::load_matrix_sync(b, tile + offset, 16);
  wmma::mma_sync(c, a, b, c);
  wmma::store_matrix_sync(out, c, 16, wmma::mem_row_major);
}

// The message CUDA_LAUNCH_CHECK throws for the launch f makes, or "" when it throws none.
template <typename F>
std::string launch_error(F f) {
  try {
    f();
    CUDA_LAUNCH_CHECK("planted");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

std::vector<int> run_neighbours(bool barrier, int salt) {
  int* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, 128 * sizeof(int)));
  if (barrier) launch<neighbour_kernel<true>>(1, 128, 0, nullptr, d, salt);
  else launch<neighbour_kernel<false>>(1, 128, 0, nullptr, d, salt);
  CUDA_LAUNCH_CHECK("neighbour_kernel");
  std::vector<int> h(128);
  CUDA_CHECK(cudaMemcpy(h.data(), d, h.size() * sizeof(int), cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaFree(d));
  return h;
}

int wrong_neighbours(const std::vector<int>& got, int salt) {
  int wrong = 0;
  for (int t = 0; t < 128; t++) wrong += got[t] != salt + (t + 1) % 128;
  return wrong;
}

}  // namespace

TEST(emu_missing_barrier_changes_results) {
  for (int salt : {1000, 2000, 3000}) CHECK(wrong_neighbours(run_neighbours(true, salt), salt) == 0);
  run_neighbours(false, 0);
  const int wrong = wrong_neighbours(run_neighbours(false, 5000), 5000);
  rt::test::note("without the barrier " + std::to_string(wrong) + " of 128 threads read a stale slot");
  CHECK(wrong > 0, "threads ran in an order that hides a missing __syncthreads");
}

TEST(emu_catches_a_host_pointer_argument) {
  std::vector<float> host(64);
  const std::string e = launch_error([&] { launch<write_kernel>(1, 64, 0, nullptr, host.data(), 64); });
  CHECK(has(e, "cudaErrorIllegalAddress") && has(e, "argument #0") && has(e, "host pointer") &&
            has(e, "write_kernel") && has(e, "planted"),
        e);
  CHECK(host[5] == 0.f, "the kernel must not have run");
  float* freed = nullptr;
  CUDA_CHECK(cudaMalloc(&freed, 64 * sizeof(float)));
  CUDA_CHECK(cudaFree(freed));
  const std::string f = launch_error([&] { launch<write_kernel>(1, 64, 0, nullptr, freed, 64); });
  CHECK(has(f, "argument #0") && has(f, "freed device allocation"), f);
  float* pinned = nullptr;  // page-locked host memory is visible to kernels, as on the GPU
  CUDA_CHECK(cudaMallocHost(&pinned, 64 * sizeof(float)));
  CHECK(launch_error([&] { launch<write_kernel>(1, 64, 0, nullptr, pinned, 64); }).empty());
  CHECK(pinned[5] == 5.f);
  CUDA_CHECK(cudaFreeHost(pinned));
}

TEST(emu_catches_an_out_of_bounds_write) {
  float* d = nullptr;
  const int n = 100;
  CUDA_CHECK(cudaMalloc(&d, n * sizeof(float)));
  CHECK(launch_error([&] { launch<write_kernel>(2, 64, 0, nullptr, d, n); }).empty());
  const std::string e = launch_error([&] { launch<off_by_one_kernel>(2, 64, 0, nullptr, d, n); });
  rt::test::note(e);
  CHECK(has(e, "cudaErrorIllegalAddress") && has(e, "0 bytes past the end of device allocation") &&
            has(e, "400 bytes") && has(e, "off_by_one_kernel"),
        e);
  // the guards are restored: the next good launch is clean
  CHECK(launch_error([&] { launch<write_kernel>(2, 64, 0, nullptr, d, n); }).empty());
  CUDA_CHECK(cudaFree(d));
}

TEST(emu_copies_check_their_direction_and_range) {
  float* d = nullptr;
  std::vector<float> h(16);
  CUDA_CHECK(cudaMalloc(&d, 16 * sizeof(float)));
  cudaGetLastError();
  CHECK(cudaMemcpy(h.data(), h.data(), 64, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
  CHECK(has(cudaGetErrorString(cudaGetLastError()), "destination"));
  CHECK(cudaMemcpy(d, h.data(), 64, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
  CHECK(cudaMemcpy(d, h.data(), 68, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
  CHECK(has(cudaGetErrorString(cudaGetLastError()), "4 bytes past the end"));
  CHECK(cudaMemcpy(d, h.data(), 64, cudaMemcpyHostToDevice) == cudaSuccess);
  CUDA_CHECK(cudaFree(d));
  CHECK(cudaFree(d) == cudaErrorInvalidDevicePointer, "a double free is refused");
  cudaGetLastError();
}

TEST(emu_fresh_device_memory_is_not_zero) {
  float* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, 8 * sizeof(float)));
  std::vector<float> h(8, 0.f);
  CUDA_CHECK(cudaMemcpy(h.data(), d, 32, cudaMemcpyDeviceToHost));
  CHECK(std::isnan(h[3]), "uninitialised device memory reads as NaN, so a kernel that relies on zeros fails");
  CUDA_CHECK(cudaFree(d));
}

TEST(emu_shuffles_and_ballots_meet_across_the_warp) {
  std::vector<float> in(64);
  for (int i = 0; i < 64; i++) in[i] = (float)i;
  float *d_in = nullptr, *d_out = nullptr;
  CUDA_CHECK(cudaMalloc(&d_in, 64 * sizeof(float)));
  CUDA_CHECK(cudaMalloc(&d_out, 128 * sizeof(float)));
  CUDA_CHECK(cudaMemcpy(d_in, in.data(), 256, cudaMemcpyHostToDevice));
  launch<warp_sum_kernel>(1, 64, 0, nullptr, d_out, d_in);
  CUDA_LAUNCH_CHECK("warp_sum_kernel");
  std::vector<float> out(64);
  CUDA_CHECK(cudaMemcpy(out.data(), d_out, 256, cudaMemcpyDeviceToHost));
  for (int i = 0; i < 64; i++) CHECK(out[i] == (i < 32 ? 496.f : 1520.f), i << ": " << out[i]);
  const std::string e = launch_error([&] { launch<early_exit_shuffle_kernel>(1, 32, 0, nullptr, d_out); });
  CHECK(has(e, "deadlock") && has(e, "__shfl_xor_sync") && has(e, "lanes 0 have exited"), e);
  CUDA_CHECK(cudaFree(d_in));
  CUDA_CHECK(cudaFree(d_out));
}

TEST(emu_dynamic_shared_memory) {
  float* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, 128 * sizeof(float)));
  launch<dynamic_shared_kernel>(1, 64, 64 * sizeof(float), nullptr, d);
  CUDA_LAUNCH_CHECK("dynamic_shared_kernel");
  std::vector<float> h(128);
  CUDA_CHECK(cudaMemcpy(h.data(), d, 512, cudaMemcpyDeviceToHost));
  CHECK(std::isnan(h[0]), "dynamic shared memory starts as NaN");
  for (int t = 0; t < 64; t++) CHECK(h[64 + t] == 63 - t);
  const std::string e = launch_error([&] { launch<dynamic_shared_kernel>(1, 64, 64 << 10, nullptr, d); });
  CHECK(has(e, "exceed its limit of 49152"), e);
  CUDA_CHECK(cudaFuncSetAttribute(dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 << 10));
  CHECK(launch_error([&] { launch<dynamic_shared_kernel>(1, 64, 64 << 10, nullptr, d); }).empty());
  CUDA_CHECK(cudaFree(d));
}

TEST(emu_current_device_is_per_thread_and_kernels_stay_on_it) {
  CUDA_CHECK(cudaSetDevice(0));
  float* on1 = nullptr;
  int seen = -1;
  std::thread other([&] {
    cudaSetDevice(1);
    cudaMalloc(&on1, 64 * sizeof(float));
    cudaGetDevice(&seen);
  });
  other.join();
  int here = -1;
  CUDA_CHECK(cudaGetDevice(&here));
  CHECK(seen == 1 && here == 0, seen << " " << here);
  const std::string e = launch_error([&] { launch<write_kernel>(1, 64, 0, nullptr, on1, 64); });
  CHECK(has(e, "device 1") && has(e, "runs on device 0"), e);
  cudaStream_t s1 = nullptr;
  CUDA_CHECK(cudaSetDevice(1));
  CUDA_CHECK(cudaStreamCreate(&s1));
  CUDA_CHECK(cudaSetDevice(0));
  CHECK(has(launch_error([&] { launch<write_kernel>(1, 64, 0, s1, on1, 64); }), "a stream of device 1"));
  CUDA_CHECK(cudaSetDevice(1));
  CHECK(launch_error([&] { launch<write_kernel>(1, 64, 0, s1, on1, 64); }).empty());
  CUDA_CHECK(cudaStreamDestroy(s1));
  CUDA_CHECK(cudaFree(on1));
  CUDA_CHECK(cudaSetDevice(0));
}

// A stream or event is freed once: destroying it again (as a double free on a GPU would corrupt the driver's
// state) is refused, and so is using it afterwards. Each device reports the memory cudaMalloc enforces.
TEST(emu_streams_and_events_are_destroyed_once) {
  cudaStream_t s = nullptr;
  cudaEvent_t e = nullptr;
  CUDA_CHECK(cudaStreamCreate(&s));
  CUDA_CHECK(cudaEventCreate(&e));
  CUDA_CHECK(cudaEventRecord(e, s));
  CUDA_CHECK(cudaStreamDestroy(s));
  CUDA_CHECK(cudaEventDestroy(e));
  CHECK(cudaStreamDestroy(s) == cudaErrorInvalidResourceHandle, "a stream destroyed twice");
  CHECK(cudaEventDestroy(e) == cudaErrorInvalidResourceHandle, "an event destroyed twice");
  CHECK(cudaStreamSynchronize(s) == cudaErrorInvalidResourceHandle, "a destroyed stream used");
  CHECK(cudaEventSynchronize(e) == cudaErrorInvalidResourceHandle, "a destroyed event used");
  cudaGetLastError();
  cudaDeviceProp p{};
  CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
  size_t free_bytes = 0, total = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
  CHECK(p.totalGlobalMem == total && total > 0 && free_bytes <= total, p.totalGlobalMem << " " << total);
}

TEST(emu_wmma_product_and_alignment) {
  float* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, 256 * sizeof(float)));
  launch<wmma_kernel>(1, 32, 0, nullptr, d, 0);
  CUDA_LAUNCH_CHECK("wmma_kernel");
  std::vector<float> h(256);
  CUDA_CHECK(cudaMemcpy(h.data(), d, 1024, cudaMemcpyDeviceToHost));
  for (int m = 0; m < 16; m++)
    for (int n = 0; n < 16; n++) {
      float want = 1.f;
      for (int k = 0; k < 16; k++) want += (float)((m * 16 + k) % 7) * (float)((k * 16 + n) % 7);
      CHECK(h[m * 16 + n] == want, m << "," << n << ": " << h[m * 16 + n] << " vs " << want);
    }
  const std::string e = launch_error([&] { launch<wmma_kernel>(1, 32, 0, nullptr, d, 4); });
  CHECK(has(e, "32-byte aligned"), e);
  CUDA_CHECK(cudaFree(d));
}

// Host code reading a device pointer faults on a GPU; the emulator makes it fault too, naming the allocation.
TEST(emu_host_code_cannot_read_device_memory) {
  float* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, 64 * sizeof(float)));
  int fds[2];
  CHECK(pipe(fds) == 0);
  const pid_t child = fork();
  if (child == 0) {
    dup2(fds[1], 2);
    volatile float x = d[3];
    (void)x;
    _exit(0);
  }
  close(fds[1]);
  std::string err;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) err.append(buf, (size_t)n);
  close(fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "the read must fault, status " << status);
  CHECK(has(err, "offset 12 of device allocation") && has(err, "host code touched device memory"), err);
  CUDA_CHECK(cudaFree(d));
}

TEST(emu_bf16_conversions_round_to_nearest_even) {
  CHECK(__bfloat16_as_ushort(__float2bfloat16_rn(1.0f)) == 0x3f80);
  CHECK(__bfloat16_as_ushort(__float2bfloat16_rn(1.00390625f)) == 0x3f80);  // halfway: to even
  CHECK(__bfloat16_as_ushort(__float2bfloat16_rn(1.01171875f)) == 0x3f82);  // halfway: to even (up)
  CHECK(__bfloat16_as_ushort(__float2bfloat16_rn(-2.5f)) == 0xc020);
  CHECK(__bfloat16_as_ushort(__float2bfloat16_rn(3.4e38f)) == 0x7f80, "rounds up to infinity");
  CHECK(std::isnan(__bfloat162float(__float2bfloat16_rn(NAN))));
  CHECK(__bfloat162float(__float2bfloat16_rn(0.1f)) == 0.10009765625f);
}
