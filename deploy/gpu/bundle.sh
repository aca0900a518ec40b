#!/usr/bin/env bash
# Packs what a GPU host without build tools needs into build/gpu-bundle (copied there with the working tree;
# build/ is ignored by git) as one archive, ringtune-gpu.tar.xz, beside its cuda_archs.txt (read before it is
# unpacked: a GPU the build has no code for stops the proof first). The archive holds:
#   - the GPU library the addon loads for `--device cuda` (ringtune_cuda_device.so: the CUDA backend with the
#     CUDA runtime linked statically, so the host needs only its driver), the CUDA test driver and bench (CUDA
#     runtime linked statically), the CPU test driver (runs without Node.js), the shared libraries they take
#     from this machine (lib/: OpenBLAS + its OpenMP/Fortran runtime, for the CPU reference) and the cblas
#     headers (include/), so the fallback rebuild on the GPU host (when its driver is older than the CUDA used
#     here) needs no packages; the attention kernels' ptxas logs, for the register check;
#   - tree/: the product as the end-to-end checks run it on a host with neither Node.js nor nats-server: this
#     machine's node (bin/node, stripped) and nats-server, the built dist/ (tests included: the evidence tests
#     run from there), the production node_modules (npm's dev dependencies left out), the addon
#     (build/native/ringtune_native.node) with the GPU library beside it.
# Built in its own folder for a portable x86-64-v3 target, never -march=native: the GPU host's CPU may lack an
# instruction this machine has (AVX-512 here would be an illegal instruction there).
# The carried bundle must stay under 60 MiB (it travels with the working tree to a GPU host that may take no
# more): node (86 MB stripped) and OpenBLAS (35 MiB) alone are over it uncompressed, so binaries are stripped
# and the whole is one solid xz archive (XZ_LEVEL, default 9; about a quarter of the unpacked size). The GPU
# library links no OpenBLAS; the drivers that link the CPU core share one copy of it (linked statically it would
# put its kernels for every CPU, about 25 MB, into each of them).
# `make gpu-bundle` runs it: the four archs take nvcc far longer than `make build`'s sm_90 (see native/CMakeLists.txt),
# so they are built here, in their own folder, and never by `make build`.
#   PACK_ONLY=1     packs what BUILD already holds, building nothing, and packs whatever of it exists (make
#                   build without nvcc has no GPU binaries); check-bundle-size.sh --projected and the dry run's
#                   test pack make build's outputs this way
#   COMPRESS=zst    a zstd archive (ringtune-gpu.tar.zst, ZSTD_LEVEL, default 1) instead: fast, for the tests;
#                   the GPU host's unpacker reads both (and xz without the xz tool, through python3)
#   COMPRESS=none   the staged folder only, as $B/staged (check-bundle-size.sh --projected compresses it itself)
# The whole procedure: deploy/gpu/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build/native-portable}
B=${B:-build/gpu-bundle}
# Every GPU generation ringtune supports: A100, A10/L4/RTX 30xx, RTX 40xx/L40S, H100/H200 (PTX for newer ones).
ARCHS=${ARCHS:-80-real;86-real;89-real;90}
COMPRESS=${COMPRESS:-xz}
if [ "${PACK_ONLY:-0}" != 1 ]; then
  cmake -S native -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRINGTUNE_MARCH=x86-64-v3 "-DRINGTUNE_CUDA_ARCHS=$ARCHS" > /dev/null
  cmake --build "$BUILD" -j "$(nproc)" --target ringtune_cuda_test ringtune_cuda_bench ringtune_native_test \
    ringtune_attention_ptxas ringtune_flash_attention_ptxas ringtune_cuda_device ringtune_native
fi
[ -f dist/cli/ringtune.js ] || {
  echo "bundle.sh: dist/cli/ringtune.js is missing: run make build (or npx tsc -p tsconfig.json) first" >&2
  exit 1
}
[ -f "$BUILD/ringtune_native.node" ] || {
  echo "bundle.sh: $BUILD/ringtune_native.node is missing (cmake found no Node headers or node-addon-api)" >&2
  exit 1
}
rm -rf "$B" && mkdir -p "$B"
S=$(mktemp -d /tmp/ringtune-gpu-stage.XXXXXX)
trap 'rm -rf "$S"' EXIT
mkdir -p "$S/lib" "$S/include" "$S/tree/bin" "$S/tree/build/native"
# optional FILE: present in a full build; PACK_ONLY of make build without nvcc has no GPU binaries
have() { [ "${PACK_ONLY:-0}" = 1 ] && [ ! -f "$1" ] && return 1; return 0; }
for f in ringtune_cuda_test ringtune_cuda_bench ringtune_native_test; do
  if have "$BUILD/$f"; then cp "$BUILD/$f" "$S/" && strip "$S/$f"; fi
done
if have "$BUILD/ringtune_cuda_device.so"; then
  cp "$BUILD/ringtune_cuda_device.so" "$S/"
  strip --strip-unneeded "$S/ringtune_cuda_device.so" # its one exported table stays (exports.map)
  # the addon opens the GPU library beside itself: one copy, linked
  ln -s ../../../ringtune_cuda_device.so "$S/tree/build/native/ringtune_cuda_device.so"
fi
# the attention kernels' ptxas logs of every arch built, and the archs (what run_device_checks.sh checks the
# GPU's compute capability and the logs against)
for f in attention_ptxas.txt flash_attention_ptxas.txt cuda_archs.txt; do
  if have "$BUILD/$f"; then cp "$BUILD/$f" "$S/"; fi
done
# the shared libraries of the CPU core (the addon links it as the drivers do)
for lib in $(ldd "$BUILD/ringtune_native.node" | awk '/openblas|gfortran|gomp|quadmath/ {print $3}'); do cp -L "$lib" "$S/lib/"; done
ln -sf libopenblas.so.0 "$S/lib/libopenblas.so"
INC=/usr/include/x86_64-linux-gnu/openblas-openmp
cp -L "$INC/cblas.h" "$INC/openblas_config.h" "$S/include/" 2> /dev/null || cp -L /usr/include/cblas.h /usr/include/openblas_config.h "$S/include/"

# --- the product: node, nats-server, dist/, production node_modules, the addon ---
T=$S/tree
strip -o "$T/bin/node" "$(readlink -f "$(command -v node)")"
NATS=$(command -v nats-server || echo /usr/sbin/nats-server)
cp -L "$NATS" "$T/bin/nats-server"
cp "$BUILD/ringtune_native.node" "$T/build/native/"
strip --strip-unneeded "$T/build/native/ringtune_native.node"
cp package.json ringtune "$T/"
# copy_tree FROM TO: the files Node.js runs (no TypeScript sources or typings, source maps, docs), and no
# nested node_modules (each package of the production tree is copied on its own)
copy_tree() {
  (cd "$1" && find . -path ./node_modules -prune -o -type f \( -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o \
    -name '*.map' -o -name '*.md' -o -name '*.tsbuildinfo' \) -prune -o -type f -print0 |
    tar --null -T - -cf -) | tar -C "$2" -xf -
}
mkdir -p "$T/dist" && copy_tree dist "$T/dist"
# npm's production tree: every package `npm ls --omit=dev` lists (nested ones at their own paths)
mapfile -t packages < <(npm ls --omit=dev --all --parseable 2> /dev/null | sed "s|^$PWD/||" | grep '^node_modules/' | sort -u)
for p in "${packages[@]}"; do
  mkdir -p "$T/$p" && copy_tree "$p" "$T/$p"
done
# A -march=native object slipping in would show up as instructions beyond AVX2 (zmm registers: AVX-512).
if [ "${PACK_ONLY:-0}" != 1 ]; then
  for f in "$S/ringtune_native_test" "$T/build/native/ringtune_native.node"; do
    if objdump -d "$f" 2> /dev/null | grep -q '%zmm'; then
      echo "bundle.sh: $f uses AVX-512 registers: not a portable x86-64-v3 build" >&2
      exit 1
    fi
  done
  # no attention kernel may spill on any of the archs (make test checks make build's sm_90 only)
  PTXAS_LOG="$S/attention_ptxas.txt $S/flash_attention_ptxas.txt" deploy/scripts/check-attention-registers.sh
fi
# read before the archive is unpacked (the compute capability check comes first)
[ -f "$S/cuda_archs.txt" ] && cp "$S/cuda_archs.txt" "$B/"
case $COMPRESS in
  xz) tar -C "$S" -cf - . | xz "-${XZ_LEVEL:-9}" -T "$(nproc)" > "$B/ringtune-gpu.tar.xz" ;;
  zst) tar -C "$S" -cf - . | zstd -q "-${ZSTD_LEVEL:-1}" -T0 > "$B/ringtune-gpu.tar.zst" ;;
  none) mv "$S" "$B/staged" && mkdir "$S" ;;
  *)
    echo "bundle.sh: COMPRESS=$COMPRESS: xz, zst or none" >&2
    exit 1
    ;;
esac
if [ "${PACK_ONLY:-0}" != 1 ]; then
  deploy/gpu/check-bundle-size.sh "$B"
fi
