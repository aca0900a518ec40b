#pragma once
// The columns of a stacked projection's output (q | k | v, gate | up: one GEMM over weights stacked in one
// matrix) moved to and from the parts' own buffers, each part's rows contiguous as the ops after it read them.
#include "common.cuh"

namespace rt::cuda {

constexpr int kMaxStackedParts = 3;

// Up to three parts; the widths of the parts a call does not use are 0 (their pointers null).
template <typename T>
struct StackedParts {
  T* p[kMaxStackedParts] = {nullptr, nullptr, nullptr};
  int width[kMaxStackedParts] = {0, 0, 0};
  int parts = 0;
  int total() const { return width[0] + width[1] + width[2]; }
};

// parts.p[j][n, c] = packed[n, offset_j + c] for every row n < N (packed: (N, total)).
template <typename T>
void split_columns(const StackedParts<T>& parts, const T* packed, int N, cudaStream_t stream);
// packed[n, offset_j + c] = parts.p[j][n, c] (the backward's gradients joined for one GEMM).
template <typename T>
void join_columns(T* packed, const StackedParts<T>& parts, int N, cudaStream_t stream);

}  // namespace rt::cuda
