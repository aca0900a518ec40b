#include "rope.cuh"
#include "vector_io.cuh"

namespace rt::cuda {
namespace {

// One thread per (position, K consecutive frequencies): the angles once, then every head. K = a 128-bit pack when
// half the head dim is a whole number of packs and x is 16-byte aligned (every head's halves are then aligned),
// else 1. The math per element is the same either way.
template <typename T, int K>
__global__ void rope_kernel(T* x, const int32_t* pos, const double* inv_freq, int N, int heads, int D, float sign) {
  const int half = D / 2, groups = half / K;
  const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (size_t)N * groups) return;
  const int n = (int)(idx / groups), j0 = (int)(idx % groups) * K;
  float cf[K], sf[K];
  for (int e = 0; e < K; e++) {
    double s, c;
    sincos((double)pos[n] * inv_freq[j0 + e], &s, &c);
    cf[e] = (float)c, sf[e] = sign * (float)s;
  }
  for (int h = 0; h < heads; h++) {
    T* v = x + ((size_t)n * heads + h) * D;
    float x1[K], x2[K], y1[K], y2[K];
    if constexpr (K > 1) {
      load_pack(x1, v + j0);
      load_pack(x2, v + j0 + half);
    } else {
      x1[0] = to_f(v[j0]), x2[0] = to_f(v[j0 + half]);
    }
    // fmaf spelled out: a compiler may contract a * b + c differently in the pack loop and the single one
    for (int e = 0; e < K; e++) {
      y1[e] = fmaf(x1[e], cf[e], -(x2[e] * sf[e]));
      y2[e] = fmaf(x2[e], cf[e], x1[e] * sf[e]);
    }
    if constexpr (K > 1) {
      store_pack(v + j0, y1);
      store_pack(v + j0 + half, y2);
    } else {
      v[j0] = from_f<T>(y1[0]), v[j0 + half] = from_f<T>(y2[0]);
    }
  }
}

template <typename T>
void rope_launch(const char* op, T* x, const int32_t* pos, const double* inv_freq, int N, int heads, int D, float sign,
                 cudaStream_t stream) {
  require(N > 0 && heads > 0 && D > 0 && D % 2 == 0 && x && pos && inv_freq, op, "bad shape N=", N, " heads=", heads,
          " D=", D);
  constexpr int K = pack_size<T>();
  if ((D / 2) % K == 0 && aligned16(x)) {
    const size_t n = (size_t)N * (D / 2 / K);
    launch<rope_kernel<T, K>>(grid_for(n, 256), 256, 0, stream, x, pos, inv_freq, N, heads, D, sign);
  } else {
    const size_t n = (size_t)N * (D / 2);
    launch<rope_kernel<T, 1>>(grid_for(n, 256), 256, 0, stream, x, pos, inv_freq, N, heads, D, sign);
  }
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
