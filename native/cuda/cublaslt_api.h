#pragma once
// The few cuBLASLt types, enum values and function signatures ringtune uses, declared by hand from the
// public cuBLASLt API (cublasLt.h / cublas_api.h, stable across CUDA 11-13), so that building needs no cuBLAS
// headers: the library itself is found at run time with dlopen. Only values documented as stable are used.
#include <cuda_runtime.h>
#include <library_types.h>  // cudaDataType_t: CUDA_R_32F = 0, CUDA_R_16BF = 14 (part of the CUDA runtime headers)
#include <cstddef>
#include <cstdint>

namespace rt::cuda::lt {

using Status = int;  // cublasStatus_t
constexpr Status kSuccess = 0;

using Handle = struct cublasLtContext*;  // cublasLtHandle_t
using MatmulDesc = void*;                // cublasLtMatmulDesc_t (pointer to an opaque struct)
using MatrixLayout = void*;              // cublasLtMatrixLayout_t
using MatmulPreference = void*;          // cublasLtMatmulPreference_t

struct MatmulAlgo {  // cublasLtMatmulAlgo_t
  uint64_t data[8];
};
struct HeuristicResult {  // cublasLtMatmulHeuristicResult_t
  MatmulAlgo algo;
  size_t workspaceSize;
  Status state;
  float wavesCount;
  int reserved[4];
};

// cublasComputeType_t
constexpr int kComputeF32 = 68;  // CUBLAS_COMPUTE_32F
// cublasOperation_t
constexpr int32_t kOpN = 0, kOpT = 1;
// cublasLtMatmulDescAttributes_t
constexpr int kDescTransA = 3;       // CUBLASLT_MATMUL_DESC_TRANSA (int32_t)
constexpr int kDescTransB = 4;       // CUBLASLT_MATMUL_DESC_TRANSB (int32_t)
constexpr int kDescEpilogue = 7;     // CUBLASLT_MATMUL_DESC_EPILOGUE (uint32_t, cublasLtEpilogue_t)
constexpr int kDescBiasPointer = 8;  // CUBLASLT_MATMUL_DESC_BIAS_POINTER (const void*; elements of D's type)
// cublasLtEpilogue_t
constexpr uint32_t kEpilogueDefault = 1;  // CUBLASLT_EPILOGUE_DEFAULT
constexpr uint32_t kEpilogueBias = 4;     // CUBLASLT_EPILOGUE_BIAS: + bias[row of column-major D]
// cublasLtMatmulPreferenceAttributes_t
constexpr int kPrefMaxWorkspaceBytes = 1;  // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES (uint64_t)
// CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_{A,B,C,D}_BYTES (uint32_t): the alignment the buffers are promised to
// have. Default 256: a plan made with the default may pick a kernel that faults on a sub-pointer.
constexpr int kPrefMinAlignmentA = 5, kPrefMinAlignmentB = 6, kPrefMinAlignmentC = 7, kPrefMinAlignmentD = 8;

// Function pointer types, signatures as in cublasLt.h
using CreateFn = Status (*)(Handle*);
using DestroyFn = Status (*)(Handle);
using MatmulDescCreateFn = Status (*)(MatmulDesc*, int /*cublasComputeType_t*/, cudaDataType_t /*scaleType*/);
using MatmulDescDestroyFn = Status (*)(MatmulDesc);
using MatmulDescSetAttributeFn = Status (*)(MatmulDesc, int /*attr*/, const void* buf, size_t size);
using MatrixLayoutCreateFn = Status (*)(MatrixLayout*, cudaDataType_t, uint64_t rows, uint64_t cols, int64_t ld);
using MatrixLayoutDestroyFn = Status (*)(MatrixLayout);
using PreferenceCreateFn = Status (*)(MatmulPreference*);
using PreferenceDestroyFn = Status (*)(MatmulPreference);
using PreferenceSetAttributeFn = Status (*)(MatmulPreference, int /*attr*/, const void* buf, size_t size);
using AlgoGetHeuristicFn = Status (*)(Handle, MatmulDesc, MatrixLayout A, MatrixLayout B, MatrixLayout C,
                                      MatrixLayout D, MatmulPreference, int requested, HeuristicResult* results,
                                      int* returned);
using MatmulFn = Status (*)(Handle, MatmulDesc, const void* alpha, const void* A, MatrixLayout Adesc, const void* B,
                            MatrixLayout Bdesc, const void* beta, const void* C, MatrixLayout Cdesc, void* D,
                            MatrixLayout Ddesc, const MatmulAlgo* algo, void* workspace, size_t workspace_bytes,
                            cudaStream_t stream);
using GetVersionFn = size_t (*)();

// The functions ringtune calls: from the library dlopen'ed at run time, or (in the tests) a stand-in.
struct Api {
  void* lib = nullptr;  // the dlopen handle; null for a stand-in
  CreateFn create;
  DestroyFn destroy;
  MatmulDescCreateFn desc_create;
  MatmulDescDestroyFn desc_destroy;
  MatmulDescSetAttributeFn desc_set;
  MatrixLayoutCreateFn layout_create;
  MatrixLayoutDestroyFn layout_destroy;
  PreferenceCreateFn pref_create;
  PreferenceDestroyFn pref_destroy;
  PreferenceSetAttributeFn pref_set;
  AlgoGetHeuristicFn heuristic;
  MatmulFn matmul;
  GetVersionFn version;
};

}  // namespace rt::cuda::lt
