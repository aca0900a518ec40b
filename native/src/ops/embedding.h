#pragma once
#include <cstdint>
#include <cstring>
#include "../error.h"
#include "../parallel.h"

namespace rt {

// out[N,C] = wte[ids[n], :]
template <typename T>
void embedding_forward(T* out, const int32_t* ids, const T* wte, int N, int C, int V) {
  for (int n = 0; n < N; n++)
    if (ids[n] < 0 || ids[n] >= V)
      fail("embedding_forward", "token id ", ids[n], " at position ", n, " outside vocab [0,", V, ")");
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) std::memcpy(out + (size_t)n * C, wte + (size_t)ids[n] * C, sizeof(T) * C);
}

// dwte[V,C] += scatter of dout[N,C] by ids. Threads split the channels, so no two write the same element.
template <typename T>
void embedding_backward(T* dwte, const T* dout, const int32_t* ids, int N, int C) {
#pragma omp parallel
  {
    int nt = thread_count(), t = thread_index();
    int c0 = (int)((int64_t)C * t / nt), c1 = (int)((int64_t)C * (t + 1) / nt);
    for (int n = 0; n < N; n++) {
      T* dst = dwte + (size_t)ids[n] * C;
      const T* src = dout + (size_t)n * C;
      for (int c = c0; c < c1; c++) dst[c] += src[c];
    }
  }
}

}  // namespace rt
