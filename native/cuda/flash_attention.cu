// The public entries of the tensor-core attention: shape and pointer checks, then the launchers of
// flash_attention_kernels.cuh.
#include <algorithm>
#include <map>
#include <mutex>
#include "flash_attention.cuh"
#include "flash_attention_kernels.cuh"

namespace rt::cuda {
namespace {

// The most dynamic shared memory a block may opt into on the calling thread's device (227 KiB on an H100,
// 163 KiB on an A100, 99 KiB on sm_86/sm_89 GPUs), read once per device.
size_t shared_memory_optin() {
  static std::mutex mu;
  static std::map<int, size_t> known;
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mu);
  auto it = known.find(device);
  if (it != known.end()) return it->second;
  cudaDeviceProp p;
  CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  return known[device] = p.sharedMemPerBlockOptin;
}

// The largest shared memory any of the kernels takes at head dim D.
template <int D>
constexpr size_t most_shared() {
  return std::max(flash::forward_smem<D>(), std::max(flash::dq_smem<D>(), flash::dkdv_smem<D>()));
}

// The double-buffered K/V tiles at D = 64 fit the 99 KiB a block may opt into on sm_86/sm_89, and D = 128 an
// A100's 163 KiB.
static_assert(most_shared<64>() <= 99 * 1024, "the kernels at D = 64 outgrow sm_86/sm_89's shared memory");
static_assert(most_shared<128>() <= 163 * 1024, "the kernels at D = 128 outgrow an A100's shared memory");

}  // namespace

bool flash_attention_supported(const AttnShape& s, const void* q, const void* k, const void* v, const void* out) {
  if (s.D != 64 && s.D != 128) return false;
  if (!aligned16(q) || !aligned16(k) || !aligned16(v) || !aligned16(out)) return false;
  return (s.D == 64 ? most_shared<64>() : most_shared<128>()) <= shared_memory_optin();
}

static void check(const AttnShape& s, const char* op) {
  require(s.B > 0 && s.T > 0 && s.H > 0 && s.KVH > 0 && s.H % s.KVH == 0, op, "bad shape B=", s.B, " T=", s.T,
          " H=", s.H, " KVH=", s.KVH, " (H must be a multiple of KVH)");
  require(s.D == 64 || s.D == 128, op, "head_dim ", s.D, " not supported (64, 128)");
}

void flash_attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                             const int32_t* seg_start, const AttnShape& s, cudaStream_t stream) {
  check(s, "flash_attention_forward");
  require(out && lse && q && k && v && seg_start, "flash_attention_forward", "null pointer");
  require(flash_attention_supported(s, q, k, v, out), "flash_attention_forward",
          "q, k, v, out must be 16-byte aligned");
  if (s.D == 64) flash::launch_forward<64>(out, lse, q, k, v, seg_start, s, stream);
  else flash::launch_forward<128>(out, lse, q, k, v, seg_start, s, stream);
}

void flash_attention_backward(bf16* dq, bf16* dk, bf16* dv, float* delta, const bf16* dout, const bf16* q,
                              const bf16* k, const bf16* v, const bf16* out, const float* lse, const int32_t* seg_start,
                              const AttnShape& s, cudaStream_t stream) {
  check(s, "flash_attention_backward");
  require(dq && dk && dv && delta && dout && q && k && v && out && lse && seg_start, "flash_attention_backward",
          "null pointer");
  require(
      flash_attention_supported(s, q, k, v, out) && aligned16(dq) && aligned16(dk) && aligned16(dv) && aligned16(dout),
      "flash_attention_backward", "every tensor must be 16-byte aligned");
  if (s.D == 64) flash::launch_backward<64>(dq, dk, dv, delta, dout, q, k, v, out, lse, seg_start, s, stream);
  else flash::launch_backward<128>(dq, dk, dv, delta, dout, q, k, v, out, lse, seg_start, s, stream);
}

}  // namespace rt::cuda
