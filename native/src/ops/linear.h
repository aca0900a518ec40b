#pragma once
#include "../blas.h"

namespace rt {

// out[N,O] = inp[N,I] @ w[O,I]^T + b[O]   (b may be null)
template <typename T>
void linear_forward(T* out, const T* inp, const T* w, const T* b, int N, int I, int O) {
  gemm(false, true, N, O, I, T(1), inp, I, w, I, T(0), out, O);
  if (!b) return;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++)
    for (int o = 0; o < O; o++) out[(size_t)n * O + o] += b[o];
}

// dinp[N,I] = dout @ w (skipped when dinp is null);  dw[O,I] += dout^T @ inp and db[O] += sum_n dout
// (each skipped when null: a frozen weight has no gradient)
template <typename T>
void linear_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w, int N, int I, int O) {
  if (dinp) gemm(false, false, N, I, O, T(1), dout, O, w, I, T(0), dinp, I);
  if (dw) gemm(true, false, O, I, N, T(1), dout, O, inp, I, T(1), dw, I);
  if (!db) return;
#pragma omp parallel for schedule(static)
  for (int o = 0; o < O; o++) {
    T acc = 0;
    for (int n = 0; n < N; n++) acc += dout[(size_t)n * O + o];
    db[o] += acc;
  }
}

}  // namespace rt
