#pragma once
// The linear layers of a decoder layer in fewer, wider kernels: a bias or a residual added in the GEMM's
// epilogue, and projections whose weights are stacked in one matrix (q, k, v; gate, up) as one GEMM whose
// output columns are then split into the parts' buffers (their backward: the gradients joined, one GEMM for
// the input's gradient and one for the stacked weight's).
#include "gemm.cuh"

namespace rt::cuda {

// out (N, O) = inp W^T (+ b) (+ residual; may alias out)
template <typename T>
void linear_forward_epilogue(Gemm& impl, T* out, const T* inp, const T* w, const T* b, const T* residual, int N, int I,
                             int O, cudaStream_t stream);
// outs[j] (N, O[j]) = inp W_j^T + b_j over w's stacked rows; packed: (N, sum O) scratch.
template <typename T>
void linear_forward_stacked(Gemm& impl, T* const* outs, const T* inp, const T* w, const T* bias, const int* O,
                            int parts, int N, int I, T* packed, cudaStream_t stream);
// dinp = sum_j douts[j] W_j (written); dw, dbias += (when not null); packed: (N, sum O) scratch.
template <typename T>
void linear_backward_stacked(Gemm& impl, T* dinp, float* dw, float* dbias, const T* const* douts, const T* inp,
                             const T* w, const int* O, int parts, int N, int I, T* packed, cudaStream_t stream);

}  // namespace rt::cuda
