#!/usr/bin/env bash
# Packs what a GPU host without build tools needs into build/gpu-bundle (copied there with the working tree;
# build/ is ignored by git): the CUDA test driver and bench (CUDA runtime linked statically), the shared
# libraries they take from this machine (OpenBLAS + its OpenMP/Fortran runtime, for the CPU reference), and the
# cblas headers, so the fallback rebuild on the GPU host (when its driver is older than CUDA 13) needs no
# packages. The whole procedure: deploy/gpu/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build/native}
B=build/gpu-bundle
rm -rf "$B" && mkdir -p "$B/lib" "$B/include"
cp "$BUILD/ringtune_cuda_test" "$BUILD/ringtune_cuda_bench" "$B/"
for lib in $(ldd "$BUILD/ringtune_cuda_test" | awk '/openblas|gfortran|gomp|quadmath/ {print $3}'); do cp -L "$lib" "$B/lib/"; done
ln -sf libopenblas.so.0 "$B/lib/libopenblas.so"
INC=/usr/include/x86_64-linux-gnu/openblas-openmp
cp -L "$INC/cblas.h" "$INC/openblas_config.h" "$B/include/" 2>/dev/null || cp -L /usr/include/cblas.h /usr/include/openblas_config.h "$B/include/"
du -sh "$B"
