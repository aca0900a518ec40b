#include "adamw.cuh"
#include "vector_io.cuh"

namespace rt::cuda {
namespace {

struct Folded {
  float b1, b2, one_b1, one_b2, step_size, inv_sqrt_bc2, shrink, eps, gs;
};

__device__ __forceinline__ void adamw_element(float& p, float& m, float& v, float g, float gs, const Folded& f) {
  const float gi = g * gs;
  m = f.b1 * m + f.one_b1 * gi;
  v = f.b2 * v + f.one_b2 * gi * gi;
  p = p * f.shrink - f.step_size * m / (sqrtf(v) * f.inv_sqrt_bc2 + f.eps);
}

// K = 4: a thread updates a 128-bit pack of each fp32 tensor (and stores the 4 bf16 of the compute copy in one
// 64-bit store); the elements past the last whole pack one at a time. K = 1: sub-pointers at other offsets.
template <int K>
__global__ void adamw_kernel(float* p, bf16* p_bf16, const float* g, float* m, float* v, size_t n, Folded f,
                             const float* clip) {
  const size_t i0 = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * K;
  if (i0 >= n) return;
  const float gs = clip ? f.gs * *clip : f.gs;
  if constexpr (K > 1) {
    if (i0 + K <= n) {
      float pp[K], gg[K], mm[K], vv[K];
      load_pack(pp, p + i0);
      load_pack(gg, g + i0);
      load_pack(mm, m + i0);
      load_pack(vv, v + i0);
      for (int e = 0; e < K; e++) adamw_element(pp[e], mm[e], vv[e], gg[e], gs, f);
      store_pack(m + i0, mm);
      store_pack(v + i0, vv);
      store_pack(p + i0, pp);
      if (p_bf16) store_rounded(p_bf16 + i0, pp);
      return;
    }
  }
  for (size_t i = i0; i < n && i < i0 + K; i++) {
    float pi = p[i], mi = m[i], vi = v[i];
    adamw_element(pi, mi, vi, g[i], gs, f);
    m[i] = mi;
    v[i] = vi;
    p[i] = pi;
    if (p_bf16) p_bf16[i] = __float2bfloat16_rn(pi);
  }
}

// K = 4: 4 floats in one 128-bit load, their bf16 in one 64-bit store.
template <int K>
__global__ void to_bf16_kernel(bf16* dst, const float* src, size_t n) {
  const size_t i0 = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * K;
  if (i0 >= n) return;
  if constexpr (K > 1) {
    if (i0 + K <= n) {
      float x[K];
      load_pack(x, src + i0);
      store_rounded(dst + i0, x);
      return;
    }
  }
  for (size_t i = i0; i < n && i < i0 + K; i++) dst[i] = __float2bfloat16_rn(src[i]);
}

bool aligned8(const void* p) { return (uintptr_t)p % 8 == 0; }

}  // namespace

void adamw_update(float* p, bf16* p_bf16, const float* g, float* m, float* v, size_t n, const AdamWStep& s, bool decay,
                  const float* clip, cudaStream_t stream) {
  require(n > 0 && p && g && m && v, "adamw_update", "bad size n=", n);
  require(s.bias_correction1 > 0 && s.bias_correction2 > 0, "adamw_update", "bias corrections must be > 0 (step >= 1)");
  // constants folded in double first, as the CPU backend does
  const Folded f{(float)s.beta1,
                 (float)s.beta2,
                 (float)(1 - s.beta1),
                 (float)(1 - s.beta2),
                 (float)(s.lr / s.bias_correction1),
                 (float)(1 / std::sqrt(s.bias_correction2)),
                 (float)(decay ? 1.0 - s.lr * s.weight_decay : 1.0),
                 (float)s.eps,
                 (float)s.grad_scale};
  if (aligned16(p) && aligned16(g) && aligned16(m) && aligned16(v) && (!p_bf16 || aligned8(p_bf16)))
    launch<adamw_kernel<4>>(grid_for((n + 3) / 4, 256), 256, 0, stream, p, p_bf16, g, m, v, n, f, clip);
  else launch<adamw_kernel<1>>(grid_for(n, 256), 256, 0, stream, p, p_bf16, g, m, v, n, f, clip);
  CUDA_LAUNCH_CHECK("adamw_update");
}

void to_bf16(bf16* dst, const float* src, size_t n, cudaStream_t stream) {
  require(n > 0 && dst && src, "to_bf16", "bad size n=", n);
  if (aligned16(src) && aligned8(dst))
    launch<to_bf16_kernel<4>>(grid_for((n + 3) / 4, 256), 256, 0, stream, dst, src, n);
  else launch<to_bf16_kernel<1>>(grid_for(n, 256), 256, 0, stream, dst, src, n);
  CUDA_LAUNCH_CHECK("to_bf16");
}

}  // namespace rt::cuda
