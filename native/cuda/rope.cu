#include "rope.cuh"

namespace rt::cuda {
namespace {

// One thread per (position, frequency): the angle once, then every head.
template <typename T>
__global__ void rope_kernel(T* x, const int32_t* pos, const double* inv_freq, int N, int heads, int D, float sign) {
  const int half = D / 2;
  const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (size_t)N * half) return;
  const int n = (int)(idx / half), j = (int)(idx % half);
  double s, c;
  sincos((double)pos[n] * inv_freq[j], &s, &c);
  const float cf = (float)c, sf = sign * (float)s;
  for (int h = 0; h < heads; h++) {
    T* v = x + ((size_t)n * heads + h) * D;
    const float x1 = to_f(v[j]), x2 = to_f(v[j + half]);
    v[j] = from_f<T>(x1 * cf - x2 * sf);
    v[j + half] = from_f<T>(x2 * cf + x1 * sf);
  }
}

template <typename T>
void rope_launch(const char* op, T* x, const int32_t* pos, const double* inv_freq, int N, int heads, int D, float sign,
                 cudaStream_t stream) {
  require(N > 0 && heads > 0 && D > 0 && D % 2 == 0 && x && pos && inv_freq, op, "bad shape N=", N, " heads=", heads,
          " D=", D);
  const size_t n = (size_t)N * (D / 2);
  launch<rope_kernel<T>>(grid_for(n, 256), 256, 0, stream, x, pos, inv_freq, N, heads, D, sign);
  CUDA_LAUNCH_CHECK(op);
}

}  // namespace

template <typename T>
void rope_forward(T* x, const int32_t* pos, const double* inv_freq, int N, int heads, int D, cudaStream_t stream) {
  rope_launch("rope_forward", x, pos, inv_freq, N, heads, D, 1.f, stream);
}
template <typename T>
void rope_backward(T* dx, const int32_t* pos, const double* inv_freq, int N, int heads, int D, cudaStream_t stream) {
  rope_launch("rope_backward", dx, pos, inv_freq, N, heads, D, -1.f, stream);
}

template void rope_forward<float>(float*, const int32_t*, const double*, int, int, int, cudaStream_t);
template void rope_forward<bf16>(bf16*, const int32_t*, const double*, int, int, int, cudaStream_t);
template void rope_backward<float>(float*, const int32_t*, const double*, int, int, int, cudaStream_t);
template void rope_backward<bf16>(bf16*, const int32_t*, const double*, int, int, int, cudaStream_t);

}  // namespace rt::cuda
