#pragma once
// The CUDA emulator's stand-in for library_types.h: the data-type tags the cuBLASLt declarations name.
enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_64F = 1, CUDA_R_16F = 2, CUDA_R_16BF = 14 };
typedef cudaDataType_t cudaDataType;
