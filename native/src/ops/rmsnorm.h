#pragma once
#include <cmath>

namespace rt {

// out[N,C] = inp * rstd * w, rstd[N] = 1/sqrt(mean(inp^2) + eps). Statistics in double whatever T is,
// matching HF, which upcasts to float32 (our float path) before the reduction.
template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* w, int N, int C, double eps) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const T* x = inp + (size_t)n * C;
    double ss = 0;
    for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
    T r = (T)(1.0 / std::sqrt(ss / C + eps));
    rstd[n] = r;
    T* y = out + (size_t)n * C;
    for (int c = 0; c < C; c++) y[c] = x[c] * r * w[c];
  }
}

// dinp = rstd * (dout*w) - inp * rstd^3 / C * sum(dout*w*inp);  dw += sum_n dout * inp * rstd (skipped when null)
template <typename T>
void rmsnorm_backward(T* dinp, T* dw, const T* dout, const T* inp, const T* w, const T* rstd, int N, int C) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const T* x = inp + (size_t)n * C;
    const T* dy = dout + (size_t)n * C;
    T r = rstd[n];
    double dot = 0;
    for (int c = 0; c < C; c++) dot += (double)dy[c] * w[c] * x[c];
    T k = (T)(dot * r * r * r / C);
    T* dx = dinp + (size_t)n * C;
    for (int c = 0; c < C; c++) dx[c] = dy[c] * w[c] * r - x[c] * k;
  }
  if (!dw) return;
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; c++) {
    double acc = 0;
    for (int n = 0; n < N; n++) acc += (double)dout[(size_t)n * C + c] * inp[(size_t)n * C + c] * rstd[n];
    dw[c] += (T)acc;
  }
}

}  // namespace rt
