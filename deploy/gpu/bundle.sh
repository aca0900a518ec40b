#!/usr/bin/env bash
# Packs what a GPU host without build tools needs into build/gpu-bundle (copied there with the working tree;
# build/ is ignored by git): the GPU library the addon loads for `--device cuda` (ringtune_cuda_device.so: the
# CUDA backend with the CUDA runtime linked statically, so the host needs only its driver; used when the
# host's own `make build` had no nvcc), the CUDA test driver and bench (CUDA runtime linked statically), the CPU test
# driver (runs without Node.js), the shared libraries they take from this machine (OpenBLAS + its
# OpenMP/Fortran runtime, for the CPU reference), and the cblas headers, so the fallback rebuild on the GPU host
# (when its driver is older than the CUDA used here) needs no packages.
# Built in its own folder for a portable x86-64-v3 target, never -march=native: the GPU host's CPU may lack an
# instruction this machine has (AVX-512 here would be an illegal instruction there).
# Binaries are stripped and the bundle must stay under 60 MiB (it travels with the working tree to a GPU host
# that may take no more): OpenBLAS (35 MiB, most of the bundle) is one shared copy for the drivers that link the
# CPU core (ringtune_cuda_test, ringtune_native_test, the bench); linked statically it would put its kernels for
# every CPU (about 25 MB) into each of them. The GPU library links none. The attention kernels' ptxas logs go
# along for the register check.
# `make gpu-bundle` runs it: the four archs take nvcc far longer than `make build`'s sm_90 (see native/CMakeLists.txt),
# so they are built here, in their own folder, and never by `make build`.
# The whole procedure: deploy/gpu/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build/native-portable}
B=${B:-build/gpu-bundle}
# Every GPU generation ringtune supports: A100, A10/L4/RTX 30xx, RTX 40xx/L40S, H100/H200 (PTX for newer ones).
ARCHS=${ARCHS:-80-real;86-real;89-real;90}
# PACK_ONLY=1 packs what BUILD already holds, building nothing (check-bundle-size.sh --projected packs make
# build's outputs this way).
if [ "${PACK_ONLY:-0}" != 1 ]; then
  cmake -S native -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRINGTUNE_MARCH=x86-64-v3 "-DRINGTUNE_CUDA_ARCHS=$ARCHS" > /dev/null
  cmake --build "$BUILD" -j "$(nproc)" --target ringtune_cuda_test ringtune_cuda_bench ringtune_native_test \
    ringtune_attention_ptxas ringtune_flash_attention_ptxas ringtune_cuda_device
fi
rm -rf "$B" && mkdir -p "$B/lib" "$B/include"
cp "$BUILD/ringtune_cuda_test" "$BUILD/ringtune_cuda_bench" "$BUILD/ringtune_native_test" "$B/"
strip "$B/ringtune_cuda_test" "$B/ringtune_cuda_bench" "$B/ringtune_native_test"
cp "$BUILD/ringtune_cuda_device.so" "$B/"
strip --strip-unneeded "$B/ringtune_cuda_device.so" # its one exported table stays (exports.map)
# the attention kernels' ptxas logs of every arch built, and the archs (what run_device_checks.sh checks the
# GPU's compute capability and the logs against)
cp "$BUILD/attention_ptxas.txt" "$BUILD/flash_attention_ptxas.txt" "$BUILD/cuda_archs.txt" "$B/"
for lib in $(ldd "$BUILD/ringtune_cuda_test" | awk '/openblas|gfortran|gomp|quadmath/ {print $3}'); do cp -L "$lib" "$B/lib/"; done
ln -sf libopenblas.so.0 "$B/lib/libopenblas.so"
INC=/usr/include/x86_64-linux-gnu/openblas-openmp
cp -L "$INC/cblas.h" "$INC/openblas_config.h" "$B/include/" 2> /dev/null || cp -L /usr/include/cblas.h /usr/include/openblas_config.h "$B/include/"
# A -march=native object slipping in would show up as instructions beyond AVX2 (zmm registers: AVX-512).
if [ "${PACK_ONLY:-0}" != 1 ] && objdump -d "$B/ringtune_native_test" 2> /dev/null | grep -q '%zmm'; then
  echo "bundle.sh: $B/ringtune_native_test uses AVX-512 registers: not a portable x86-64-v3 build" >&2
  exit 1
fi
if [ "${PACK_ONLY:-0}" != 1 ]; then
  # no attention kernel may spill on any of the archs (make test checks make build's sm_90 only)
  PTXAS_LOG="$B/attention_ptxas.txt $B/flash_attention_ptxas.txt" deploy/scripts/check-attention-registers.sh
  deploy/gpu/check-bundle-size.sh "$B"
fi
