// The own GEMM: a wmma tensor-core kernel for bf16 inputs (fp32 accumulation), and a plain tiled fp32 kernel
// for the fp32 checking mode. Correct for any size, transposes and leading dimensions; tuned only roughly
// (cuBLASLt is the fast path).
#include <mma.h>
#include <cstdlib>
#include <cstring>
#include "gemm.cuh"

namespace rt::cuda {

void check_gemm_args(const GemmArgs& g, const char* impl) {
  require(g.M > 0 && g.N > 0 && g.K > 0, impl, "bad sizes M=", g.M, " N=", g.N, " K=", g.K);
  require(g.A && g.B && g.C, impl, "null operand (M=", g.M, " N=", g.N, " K=", g.K, ")");
  const int a_cols = g.ta ? g.M : g.K, b_cols = g.tb ? g.K : g.N;
  require(g.lda >= a_cols && g.ldb >= b_cols && g.ldc >= g.N, impl, "leading dimension too small: lda=", g.lda,
          " (>= ", a_cols, ") ldb=", g.ldb, " (>= ", b_cols, ") ldc=", g.ldc, " (>= ", g.N, ")");
  require(!g.residual || (g.ldr >= g.N && g.beta == 0.f), impl, "a residual needs ldr >= N (ldr=", g.ldr, ", N=", g.N,
          ") and beta 0 (beta=", g.beta, ")");
}

namespace {

using namespace nvcuda;

constexpr int BM = 64, BN = 64, BK = 32;
constexpr int kThreads = 128;  // 4 warps, each a 32 x 32 piece of the 64 x 64 tile

template <typename TC>
__device__ __forceinline__ float load_c(const TC* C, size_t i) {
  return to_f(C[i]);
}

// alpha * acc (+ beta C) (+ bias[n]) (+ R[m, n]), in fp32, in the order cuBLASLt documents.
template <typename TC>
__device__ __forceinline__ float epilogue(float acc, float alpha, float beta, const TC* C, size_t ci, const TC* bias,
                                          const TC* R, int ldr, int m, int n) {
  float r = alpha * acc;
  if (beta != 0.f) r += beta * load_c(C, ci);
  if (R) r += to_f(R[(size_t)m * ldr + n]);
  if (bias) r += to_f(bias[n]);
  return r;
}

template <typename TC>
__global__ void __launch_bounds__(kThreads)
    wmma_gemm_kernel(bool ta, bool tb, int M, int N, int K, float alpha, const bf16* A, int lda, const bf16* B, int ldb,
                     float beta, TC* C, int ldc, const TC* bias, const TC* R, int ldr) {
  __shared__ __align__(32) bf16 As[BM][BK + 16];  // (m, k)
  __shared__ __align__(32) bf16 Bs[BK][BN + 16];  // (k, n)
  __shared__ __align__(32) float Cs[BM][BN + 8];
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int warp = threadIdx.x / 32, wm = (warp / 2) * 32, wn = (warp % 2) * 32;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.f);
  const bf16 zero = __float2bfloat16_rn(0.f);
  for (int k0 = 0; k0 < K; k0 += BK) {
    // A tile: consecutive threads walk the stored matrix's contiguous dimension (coalesced either way)
    for (int idx = threadIdx.x; idx < BM * BK; idx += kThreads) {
      int m, k;
      if (!ta) m = idx / BK, k = idx % BK;
      else k = idx / BM, m = idx % BM;
      const int gm = m0 + m, gk = k0 + k;
      As[m][k] = gm < M && gk < K ? A[ta ? (size_t)gk * lda + gm : (size_t)gm * lda + gk] : zero;
    }
    for (int idx = threadIdx.x; idx < BK * BN; idx += kThreads) {
      int k, n;
      if (!tb) k = idx / BN, n = idx % BN;
      else n = idx / BK, k = idx % BK;
      const int gk = k0 + k, gn = n0 + n;
      Bs[k][n] = gk < K && gn < N ? B[tb ? (size_t)gn * ldb + gk : (size_t)gk * ldb + gn] : zero;
    }
    __syncthreads();
    for (int kk = 0; kk < BK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb[2];
      for (int i = 0; i < 2; i++) wmma::load_matrix_sync(fa[i], &As[wm + i * 16][kk], BK + 16);
      for (int j = 0; j < 2; j++) wmma::load_matrix_sync(fb[j], &Bs[kk][wn + j * 16], BN + 16);
      for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++)
      wmma::store_matrix_sync(&Cs[wm + i * 16][wn + j * 16], acc[i][j], BN + 8, wmma::mem_row_major);
  __syncthreads();
  for (int idx = threadIdx.x; idx < BM * BN; idx += kThreads) {
    const int m = idx / BN, n = idx % BN, gm = m0 + m, gn = n0 + n;
    if (gm >= M || gn >= N) continue;
    const size_t ci = (size_t)gm * ldc + gn;
    C[ci] = from_f<TC>(epilogue(Cs[m][n], alpha, beta, C, ci, bias, R, ldr, gm, gn));
  }
}

// fp32: 16 x 16 tiles, one output per thread, fp32 math throughout (the checking mode's reference path).
constexpr int T16 = 16;
template <typename TC>
__global__ void f32_gemm_kernel(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                                const float* B, int ldb, float beta, TC* C, int ldc, const TC* bias, const TC* R,
                                int ldr) {
  __shared__ float As[T16][T16 + 1], Bs[T16][T16 + 1];
  const int m = blockIdx.y * T16 + threadIdx.y, n = blockIdx.x * T16 + threadIdx.x;
  float acc = 0.f;
  for (int k0 = 0; k0 < K; k0 += T16) {
    {  // As[ty][tx] = op(A)(m, k0 + tx)
      const int gk = k0 + threadIdx.x;
      As[threadIdx.y][threadIdx.x] = m < M && gk < K ? A[ta ? (size_t)gk * lda + m : (size_t)m * lda + gk] : 0.f;
    }
    {  // Bs[ty][tx] = op(B)(k0 + ty, n)
      const int gk = k0 + threadIdx.y;
      Bs[threadIdx.y][threadIdx.x] = gk < K && n < N ? B[tb ? (size_t)n * ldb + gk : (size_t)gk * ldb + n] : 0.f;
    }
    __syncthreads();
    for (int k = 0; k < T16; k++) acc += As[threadIdx.y][k] * Bs[k][threadIdx.x];
    __syncthreads();
  }
  if (m < M && n < N) {
    const size_t ci = (size_t)m * ldc + n;
    C[ci] = from_f<TC>(epilogue(acc, alpha, beta, C, ci, bias, R, ldr, m, n));
  }
}

class OwnGemm final : public Gemm {
 public:
  const char* name() const override { return "own (wmma bf16 / fp32 tiles)"; }
  void run(const GemmArgs& g, cudaStream_t stream) override {
    check_gemm_args(g, "gemm (own)");
    if (g.ab == DType::BF16) {
      const dim3 grid(grid_for(g.N, BN), grid_for(g.M, BM));
      const bf16* A = (const bf16*)g.A;
      const bf16* B = (const bf16*)g.B;
      if (g.c == DType::F32)
        launch<wmma_gemm_kernel<float>>(grid, kThreads, 0, stream, g.ta, g.tb, g.M, g.N, g.K, g.alpha, A, g.lda, B,
                                        g.ldb, g.beta, (float*)g.C, g.ldc, (const float*)g.bias,
                                        (const float*)g.residual, g.ldr);
      else
        launch<wmma_gemm_kernel<bf16>>(grid, kThreads, 0, stream, g.ta, g.tb, g.M, g.N, g.K, g.alpha, A, g.lda, B,
                                       g.ldb, g.beta, (bf16*)g.C, g.ldc, (const bf16*)g.bias, (const bf16*)g.residual,
                                       g.ldr);
    } else {
      const dim3 grid(grid_for(g.N, T16), grid_for(g.M, T16)), block(T16, T16);
      const float* A = (const float*)g.A;
      const float* B = (const float*)g.B;
      if (g.c == DType::F32)
        launch<f32_gemm_kernel<float>>(grid, block, 0, stream, g.ta, g.tb, g.M, g.N, g.K, g.alpha, A, g.lda, B, g.ldb,
                                       g.beta, (float*)g.C, g.ldc, (const float*)g.bias, (const float*)g.residual,
                                       g.ldr);
      else
        launch<f32_gemm_kernel<bf16>>(grid, block, 0, stream, g.ta, g.tb, g.M, g.N, g.K, g.alpha, A, g.lda, B, g.ldb,
                                      g.beta, (bf16*)g.C, g.ldc, (const bf16*)g.bias, (const bf16*)g.residual, g.ldr);
    }
    CUDA_LAUNCH_CHECK("gemm (own)");
  }
};

}  // namespace

std::unique_ptr<Gemm> make_own_gemm() { return std::make_unique<OwnGemm>(); }

std::unique_ptr<Gemm> make_gemm() {
  const char* force = std::getenv("RINGTUNE_GEMM");
  if (force && !std::strcmp(force, "own")) return make_own_gemm();
  std::unique_ptr<Gemm> lt = make_cublaslt_gemm();
  if (lt) return lt;
  return make_own_gemm();
}

}  // namespace rt::cuda
