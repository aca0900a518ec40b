#include "adamw.cuh"

namespace rt::cuda {
namespace {

struct Folded {
  float b1, b2, one_b1, one_b2, step_size, inv_sqrt_bc2, shrink, eps, gs;
};

__global__ void adamw_kernel(float* p, bf16* p_bf16, const float* g, float* m, float* v, size_t n, Folded f,
                             const float* clip) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float gs = clip ? f.gs * *clip : f.gs;
  const float gi = g[i] * gs;
  const float mi = f.b1 * m[i] + f.one_b1 * gi;
  const float vi = f.b2 * v[i] + f.one_b2 * gi * gi;
  m[i] = mi;
  v[i] = vi;
  const float pi = p[i] * f.shrink - f.step_size * mi / (sqrtf(vi) * f.inv_sqrt_bc2 + f.eps);
  p[i] = pi;
  if (p_bf16) p_bf16[i] = __float2bfloat16_rn(pi);
}

__global__ void to_bf16_kernel(bf16* dst, const float* src, size_t n) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = __float2bfloat16_rn(src[i]);
}

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
  launch<adamw_kernel>(grid_for(n, 256), 256, 0, stream, p, p_bf16, g, m, v, n, f, clip);
  CUDA_LAUNCH_CHECK("adamw_update");
}

void to_bf16(bf16* dst, const float* src, size_t n, cudaStream_t stream) {
  require(n > 0 && dst && src, "to_bf16", "bad size n=", n);
  launch<to_bf16_kernel>(grid_for(n, 256), 256, 0, stream, dst, src, n);
  CUDA_LAUNCH_CHECK("to_bf16");
}

}  // namespace rt::cuda
