// One thread per element of the packed (N, total) matrix: reads and writes coalesced along a row on both sides.
#include "stacked_columns.cuh"

namespace rt::cuda {
namespace {

template <typename T, bool kJoin>
__global__ void stacked_columns_kernel(T* packed, T* p0, T* p1, T* p2, int w0, int w1, int w2, int N) {
  const int total = w0 + w1 + w2;
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t)N * total) return;
  const int n = (int)(i / total), c = (int)(i % total);
  T* part;
  int col, width;
  if (c < w0) part = p0, col = c, width = w0;
  else if (c < w0 + w1) part = p1, col = c - w0, width = w1;
  else part = p2, col = c - w0 - w1, width = w2;
  T& mine = part[(size_t)n * width + col];
  if (kJoin) packed[i] = mine;
  else mine = packed[i];
}

template <typename T, bool kJoin>
void run(T* packed, const StackedParts<T>& s, int N, cudaStream_t stream, const char* what) {
  require(N > 0 && packed && s.parts >= 1 && s.parts <= kMaxStackedParts, what, "bad shape N=", N, " parts=", s.parts);
  for (int j = 0; j < kMaxStackedParts; j++)
    require(j < s.parts ? s.p[j] && s.width[j] > 0 : s.width[j] == 0, what, "part ", j, " of ", s.parts, " has width ",
            s.width[j]);
  const size_t n = (size_t)N * s.total();
  launch<stacked_columns_kernel<T, kJoin>>(grid_for(n, 256), 256, 0, stream, packed, s.p[0], s.p[1], s.p[2], s.width[0],
                                           s.width[1], s.width[2], N);
  CUDA_LAUNCH_CHECK(what);
}

}  // namespace

template <typename T>
void split_columns(const StackedParts<T>& parts, const T* packed, int N, cudaStream_t stream) {
  run<T, false>(const_cast<T*>(packed), parts, N, stream, "split_columns");
}

template <typename T>
void join_columns(T* packed, const StackedParts<T>& parts, int N, cudaStream_t stream) {
  run<T, true>(packed, parts, N, stream, "join_columns");
}

template void split_columns<float>(const StackedParts<float>&, const float*, int, cudaStream_t);
template void split_columns<bf16>(const StackedParts<bf16>&, const bf16*, int, cudaStream_t);
template void join_columns<float>(float*, const StackedParts<float>&, int, cudaStream_t);
template void join_columns<bf16>(bf16*, const StackedParts<bf16>&, int, cudaStream_t);

}  // namespace rt::cuda
