#pragma once
// Row-major GEMM for float (sgemm) and double (dgemm, used by the finite-difference checks).
// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
#include <cblas.h>

namespace rt {

inline void gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                 int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
              lda, B, ldb, beta, C, ldc);
}

inline void gemm(bool transA, bool transB, int M, int N, int K, double alpha, const double* A, int lda, const double* B,
                 int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
              lda, B, ldb, beta, C, ldc);
}

}  // namespace rt
