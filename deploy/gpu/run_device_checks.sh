#!/usr/bin/env bash
# Every check of the CUDA backend on a GPU host, in one run (TOTAL seconds, default 540), results under $OUT
# (default ./gpu-out), at most 8 files there (7 today):
#   summary.txt      written first, one line appended as each step ends: the driver's CUDA version and the
#                    GPU's compute capability first, then host, CPU flags, the cuBLASLt file loaded, each
#                    step's exit status and headline, the FAIL lines
#   host.txt         nvidia-smi, CPU flags, where cuBLASLt was looked for, the attention kernels' ptxas
#                    registers, rebuild logs (when a rebuild ran)
#   cuda_test.txt    the op tests (CUDA vs CPU, fp32 and bf16; both GEMMs), CUDA_LAUNCH_BLOCKING=1
#   sanitizer.txt    compute-sanitizer memcheck, racecheck and synccheck on the attention and GEMM tests
#                    (where installed)
#   native_test.txt  the CPU test driver (no Node.js): the reference the GPU is compared with still holds here
#   e2e.txt          the evidence through the product with --device cuda (deploy/gpu/e2e_checks.sh; needs node +
#                    dist/): dump vs cpu, the 20-step job vs a CPU worker, checkpoints across devices, a mixed
#                    ring, and the LoRA and serving tests that run on the evidence device
#   bench.txt        make bench-gpu's script on the bundle's bench: GEMM peak, attention, each shape's step (MFU against
#                    989 TFLOP/s and the measured peak, attention share) beside PyTorch eager and torch.compile
#                    (where torch sees the GPU); its summary lines are copied into summary.txt
# Binaries: build/gpu-bundle (deploy/gpu/bundle.sh on a build machine: portable x86-64-v3, CUDA runtime
# static). When they cannot run here (exit status >= 126: not executable, missing library, illegal
# instruction, crash) or print no "device:" line (driver older than their CUDA), they are rebuilt with this
# host's nvcc into a /tmp folder, under a timeout, and the step runs again.
# A driver older than the CUDA runtime the binaries need, or a GPU the build has no code for, stops the run
# after the first lines, saying why. Exit status: 0 when every step that ran passed, 1 when one failed, 2 when
# this host has no usable GPU.
# DRY=1: the same steps against the CUDA emulator (cuda-emu) on any host, no GPU: the op tests' driver built for
# the emulator on filters (DRY_FILTER), the dump check on cuda-emu, the evidence tests listed, not run, the bench
# script on the emulator's smoke shapes (DRY_BENCH=0 skips it); the GPU-only steps say they are skipped. `make
# test` runs it to keep the script working between lent GPUs.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-./gpu-out}
TOTAL=${TOTAL:-540}
BUNDLE=${BUNDLE:-build/gpu-bundle}
case $BUNDLE in /*) ;; *) BUNDLE=$PWD/$BUNDLE ;; esac
mkdir -p "$OUT"
START=$(date +%s)
SUMMARY="$OUT/summary.txt"
HOST="$OUT/host.txt"
: > "$SUMMARY"
: > "$HOST"
failed=0

left() { echo $((TOTAL - ($(date +%s) - START))); }
# The benchmark comes last and is what only a GPU can measure: the steps before it leave it RESERVE seconds
# (BENCH_RESERVE, default 180), so a slow sanitizer or test cannot starve it.
RESERVE=${BENCH_RESERVE:-180}
# budget WANT: WANT seconds, or what is left of TOTAL (less the reserve) when less (at least 5)
budget() {
  local want=$1 l
  l=$(($(left) - RESERVE))
  ((l < want)) && want=$l
  ((want < 5)) && want=5
  echo "$want"
}
# shellcheck source=deploy/gpu/summary_lib.sh
. deploy/gpu/summary_lib.sh

DRY=${DRY:-0}
log "ringtune device checks, $(date -u '+%Y-%m-%d %H:%M UTC'), host $(hostname)"
E2E_DEVICE=cuda
if [ "$DRY" = 1 ]; then
  log "dry run: every step against the CUDA emulator (cuda-emu), no GPU: this checks the script, not a GPU"
  E2E_DEVICE=cuda-emu
fi
# --- the GPU first: driver and compute capability, or why there is nothing to check ---------------------------
# The driver and the GPU (skipped by the dry run): stops the run, saying why, on a driver too old or a GPU the
# build has no code for.
gpu_first() {
  if ! command -v nvidia-smi > /dev/null 2>&1; then
    log "gpu: none (nvidia-smi not found: no NVIDIA driver on this host); nothing to check"
    exit 2
  fi
  local gpus driver driver_cuda cc need archs
  gpus=$(nvidia-smi -L 2> /dev/null | grep -c '^GPU ')
  if [ "$gpus" -eq 0 ]; then
    log "gpu: none (nvidia-smi lists no GPU: $(nvidia-smi -L 2>&1 | head -1)); nothing to check"
    exit 2
  fi
  driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2> /dev/null | head -1)
  driver_cuda=$(nvidia-smi 2> /dev/null | grep -o 'CUDA Version: [0-9.]*' | awk '{print $3}' | head -1)
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2> /dev/null | head -1 | tr -d ' ')
  log "driver: ${driver:-unknown} (CUDA ${driver_cuda:-unknown}); compute capability: ${cc:-unknown}"
  need=$(cuda_runtime_needed native/src/cuda_probe.h)
  if ! version_at_least "${driver_cuda:-0}" "$need"; then
    log "STOP: the driver supports CUDA ${driver_cuda:-unknown}, ringtune's CUDA runtime needs CUDA $need or newer" \
      "(driver 580+): update the NVIDIA driver; nothing else was run"
    exit 2
  fi
  archs=$(built_archs "$(cat "$BUNDLE/cuda_archs.txt" 2> /dev/null || echo 90)")
  if [ -n "$cc" ] && ! arch_supported "$cc" "$archs"; then
    log "STOP: compute capability $cc: the build has GPU code only for sm_${archs// /, sm_}; nothing else was run"
    exit 2
  fi
  {
    echo "== nvidia-smi"
    nvidia-smi 2>&1
  } >> "$HOST"
  log "gpu: $gpus x $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2> /dev/null | head -1)"
}
[ "$DRY" = 1 ] || gpu_first
log "nvcc: $(nvcc --version 2> /dev/null | tail -1 || echo none)"

# --- the carried archive (deploy/gpu/bundle.sh), unpacked into a temp folder: the binaries and the product's
# tree with its own node. From here on BUNDLE is that folder. A bundle carried unpacked is used as it is.
TREE=""
ARCHIVE=$(ls "$BUNDLE"/ringtune-gpu.tar.xz "$BUNDLE"/ringtune-gpu.tar.zst 2> /dev/null | head -1)
if [ -n "$ARCHIVE" ]; then
  U=$(mktemp -d /tmp/ringtune-gpu.XXXXXX)
  trap 'rm -rf "$U"' EXIT
  t0=$(date +%s%N)
  if unpack_bundle "$ARCHIVE" "$U" 2> "$U.err"; then
    ms=$((($(date +%s%N) - t0) / 1000000))
    log "bundle: $ARCHIVE ($(du -m "$ARCHIVE" | cut -f1) MiB carried) unpacked into $U ($(du -sm "$U" | cut -f1) MiB)" \
      "in $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s"
    BUNDLE=$U
    [ -x "$U/tree/bin/node" ] && [ -f "$U/tree/dist/cli/ringtune.js" ] && TREE=$U/tree
  else
    log "bundle: FAILED to unpack $ARCHIVE: $(head -3 "$U.err" | tr '\n' ' ')"
    failed=1
  fi
  rm -f "$U.err"
fi

cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2> /dev/null)
cpu_flags=$(grep -m1 -o -w -E 'avx|avx2|fma|f16c|bmi2|avx512f|avx512bw|avx512_bf16|amx_bf16' /proc/cpuinfo 2> /dev/null | sort -u | tr '\n' ' ')
log "cpu: ${cpu_model:-unknown}; flags: ${cpu_flags:-none of avx/avx2/fma}"
{
  echo "== CPU flags"
  grep -m1 '^flags' /proc/cpuinfo 2> /dev/null
} >> "$HOST"

# --- cuBLASLt: RINGTUNE_CUBLASLT, then the CUDA 13 pip wheels (site-packages/nvidia/*/lib), then the host ---
find_cublaslt() {
  local c
  if [ -n "${RINGTUNE_CUBLASLT:-}" ] && [ -f "$RINGTUNE_CUBLASLT" ]; then
    echo "$RINGTUNE_CUBLASLT"
    return
  fi
  local sites
  sites=$(python3 -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()] + sys.path))' 2> /dev/null | sort -u)
  for v in 13 12; do
    for s in $sites; do
      for c in "$s"/nvidia/*/lib/libcublasLt.so."$v"*; do [ -f "$c" ] && echo "$c" && return; done
    done
  done
  for v in 13 12; do
    for c in /usr/local/cuda/lib64/libcublasLt.so."$v"* /usr/local/cuda-*/lib64/libcublasLt.so."$v"* \
      /usr/local/cuda*/targets/x86_64-linux/lib/libcublasLt.so."$v"* /usr/lib/x86_64-linux-gnu/libcublasLt.so."$v"*; do
      [ -f "$c" ] && echo "$c" && return
    done
    c=$(ldconfig -p 2> /dev/null | awk -v v="libcublasLt.so.$v" '$1 == v {print $NF; exit}')
    [ -n "$c" ] && [ -f "$c" ] && echo "$c" && return
  done
  # anywhere on this host's own file systems, bounded in time
  timeout 30 find / -xdev \( -path /proc -o -path /sys \) -prune -o -name 'libcublasLt.so.1[23]*' -print 2> /dev/null |
    sort -r | head -1
}
LT=""
[ "$DRY" = 1 ] || LT=$(find_cublaslt)
{
  echo "== cuBLASLt copies seen"
  python3 -c 'import site; print("\n".join(site.getsitepackages()))' 2> /dev/null | while read -r s; do ls "$s"/nvidia/*/lib/libcublasLt.so* 2> /dev/null; done
  ldconfig -p 2> /dev/null | grep cublasLt
  echo "chosen: ${LT:-none}"
} >> "$HOST"
log "cublasLt: ${LT:-not found (the GEMMs fall back to the own kernel)}"

# --- NCCL: RINGTUNE_NCCL_LIB, then the pip wheel (site-packages/nvidia/nccl/lib), then the host's ---------------
# The GPU library's data plane opens it (the op tests' nccl line says which file, and sum on the GPU through it);
# a python environment that is not active is not on the library's own search list, so it is named here.
find_nccl() {
  local c s sites
  if [ -n "${RINGTUNE_NCCL_LIB:-}" ] && [ -f "$RINGTUNE_NCCL_LIB" ]; then
    echo "$RINGTUNE_NCCL_LIB"
    return
  fi
  sites=$(python3 -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()] + sys.path))' 2> /dev/null | sort -u)
  for s in $sites; do
    c="$s/nvidia/nccl/lib/libnccl.so.2"
    [ -f "$c" ] && echo "$c" && return
  done
  c=$(ldconfig -p 2> /dev/null | awk '$1 == "libnccl.so.2" {print $NF; exit}')
  [ -n "$c" ] && [ -f "$c" ] && echo "$c"
}
NCCL=""
if [ "$DRY" = 1 ]; then
  log "nccl library: not looked for (dry run: the op tests use the project's stand-in)"
else
  NCCL=$(find_nccl)
  log "nccl library: ${NCCL:-not found (rings of GPUs fall back to host staging; the op tests say so)}"
fi

# ringtune's binaries (and only they) see the bundle's libraries and the chosen cuBLASLt and NCCL; nvidia-smi,
# python and torch keep the host's own library path.
RT_LIBS="$BUNDLE/lib${LT:+:$(dirname "$LT")}"
RT=(env "LD_LIBRARY_PATH=$RT_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
[ -n "$LT" ] && RT+=("RINGTUNE_CUBLASLT=$LT")
[ -n "$NCCL" ] && export RINGTUNE_NCCL_LIB="$NCCL"

TEST="$BUNDLE/ringtune_cuda_test"
OP_FILTERS=("") # every test
if [ "$DRY" = 1 ]; then # the same driver built for the emulator, on a few tests (DRY_FILTER: name parts)
  TEST=${EMU_TEST:-$PWD/build/native/ringtune_cuda_emu_test}
  read -r -a OP_FILTERS <<< "${DRY_FILTER:-cuda_cublaslt cuda_library_nccl}"
fi
# The GPU library the product loads for --device cuda: this tree's build (make build with nvcc), else the
# bundle's (the addon refuses one built from other sources).
if [ "$DRY" != 1 ] && [ ! -f build/native/ringtune_cuda_device.so ] && [ -f "$BUNDLE/ringtune_cuda_device.so" ]; then
  export RINGTUNE_CUDA_LIBRARY="$BUNDLE/ringtune_cuda_device.so"
fi
# The op tests' driver reaches the GPU library it was built with (its NCCL test loads it): the bundle's beside
# the bundle's driver.
TEST_LIBRARY=()
if [ "$DRY" != 1 ] && [ -f "$BUNDLE/ringtune_cuda_device.so" ]; then
  TEST_LIBRARY=("RINGTUNE_CUDA_LIBRARY=$BUNDLE/ringtune_cuda_device.so")
fi
bundle_size=$(du -sm "$BUNDLE" 2> /dev/null | cut -f1)
log "bundle: $BUNDLE, ${bundle_size:+$bundle_size MiB}${bundle_size:-absent}; GPU library:" \
  "${RINGTUNE_CUDA_LIBRARY:-build/native/ringtune_cuda_device.so}${TREE:+ (the end-to-end step: the one beside the addon of the bundle)}"
BENCH="$BUNDLE/ringtune_cuda_bench"
NATIVE_TEST="$BUNDLE/ringtune_native_test"
REBUILT=""

# rebuild: the three drivers from this working tree with the host's nvcc, into a fresh /tmp folder, under a
# timeout (no cmake needed; the bundle carries the OpenBLAS headers and libraries).
rebuild() {
  [ -n "$REBUILT" ] || [ "$DRY" = 1 ] && return 1
  if ! command -v nvcc > /dev/null 2>&1; then
    log "rebuild: not possible (no nvcc on this host)"
    return 1
  fi
  local R
  R=$(mktemp -d /tmp/ringtune-rebuild.XXXXXX)
  REBUILT=$R
  log "rebuild: with the host's nvcc into $R"
  # the core: every C++ source but the Node binding (new sources are picked up without editing this list)
  local core=() f
  for f in native/src/*.cpp; do [ "$f" = native/src/binding.cpp ] || core+=("$f"); done
  local F=(-std=c++17 -O3 -arch=sm_90 -Xcompiler -fopenmp,-march=x86-64-v3 -Inative/cuda -Inative/src -Inative/test
    "-I$BUNDLE/include")
  local L=("-L$BUNDLE/lib" -lopenblas -lgomp -ldl)
  local t
  t=$(budget 240)
  # the two drivers side by side, each under the same limit
  # the op tests, less the one of the GPU library's NCCL data plane (it loads the library cmake builds beside it)
  local tests=()
  for f in native/cuda_test/*.cpp; do [ "$f" = native/cuda_test/nccl_plane_tests.cpp ] || tests+=("$f"); done
  timeout "$t" nvcc "${F[@]}" native/cuda/*.cu native/cuda/*.cpp "${tests[@]}" native/test/test_runner.cpp \
    "${core[@]}" -o "$R/ringtune_cuda_test" "${L[@]}" > "$R/build_test.txt" 2>&1 &
  local test_pid=$!
  # the bench runs the product model: the core sources and OpenBLAS as for the test driver
  timeout "$t" nvcc "${F[@]}" native/cuda/*.cu native/cuda/*.cpp bench/cuda/bench_step.cu "${core[@]}" \
    -o "$R/ringtune_cuda_bench" "${L[@]}" > "$R/build_bench.txt" 2>&1
  local rc=$?
  wait "$test_pid" || rc=$?
  {
    echo "== rebuild ($R), exit status $rc"
    tail -n 30 "$R"/build_*.txt 2> /dev/null
  } >> "$HOST"
  [ -x "$R/ringtune_cuda_test" ] && TEST="$R/ringtune_cuda_test"
  [ -x "$R/ringtune_cuda_bench" ] && BENCH="$R/ringtune_cuda_bench"
  log "rebuild: test $([ "$TEST" = "$R/ringtune_cuda_test" ] && echo ok || echo FAILED)," \
    "bench $([ "$BENCH" = "$R/ringtune_cuda_bench" ] && echo ok || echo FAILED) (log in host.txt)"
  [ "$TEST" = "$R/ringtune_cuda_test" ]
}

# needs_rebuild RC FILE: the binary could not run here, or did not reach the device
needs_rebuild() { [ "$1" -ge 126 ] || ! grep -q '^device:' "$2"; }

# --- 1. op tests ------------------------------------------------------------------------------------------
run_op_tests() {
  local f rc=0
  : > "$OUT/cuda_test.txt"
  for f in "${OP_FILTERS[@]}"; do
    CUDA_LAUNCH_BLOCKING=1 timeout "$(budget 150)" "${RT[@]}" "${TEST_LIBRARY[@]}" "$TEST" ${f:+"$f"} \
      >> "$OUT/cuda_test.txt" 2>&1 || rc=$?
  done
  return "$rc"
}
if [ -x "$TEST" ]; then
  run_op_tests
  rc=$?
else
  echo "$TEST: not found (deploy/gpu/bundle.sh builds it)" > "$OUT/cuda_test.txt"
  rc=127
fi
if needs_rebuild "$rc" "$OUT/cuda_test.txt" && rebuild; then
  run_op_tests
  rc=$?
fi
grep -E '^(device|cublasLt|nccl):' "$OUT/cuda_test.txt" | awk '!seen[$0]++' | while read -r line; do log "$line"; done
log "op tests: $(grep -E '^[0-9]+ tests' "$OUT/cuda_test.txt" | paste -sd ';' || echo 'no count')"
step_result "op tests" "$rc" "$OUT/cuda_test.txt"
if ! grep -q '^device:' "$OUT/cuda_test.txt"; then
  log "the CUDA binaries do not reach the GPU: $(head -3 "$OUT/cuda_test.txt" | tr '\n' ' ')"
  log "done in $(($(date +%s) - START))s"
  exit 1
fi

# --- 2. compute-sanitizer (memcheck, racecheck, synccheck) on the attention and GEMM tests ---------------------------------------------------
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2> /dev/null | head -1)
if [ "$DRY" = 1 ]; then
  log "sanitizer: skipped (dry run: compute-sanitizer checks a GPU)"
elif [ -n "$SAN" ]; then
  : > "$OUT/sanitizer.txt"
  san_rc=0
  for tool in memcheck racecheck synccheck; do
    for filter in cuda_attention cuda_gemm; do
      echo "== $tool $filter" >> "$OUT/sanitizer.txt"
      timeout "$(budget 45)" "${RT[@]}" "${TEST_LIBRARY[@]}" "$SAN" --tool "$tool" --error-exitcode 99 "$TEST" "$filter" >> "$OUT/sanitizer.txt" 2>&1
      r=$?
      log "sanitizer $tool $filter: exit status $r$(grep -m1 -o 'ERROR SUMMARY: [0-9]* error[s]*' "$OUT/sanitizer.txt" | tail -1 | sed 's/^/, /')"
      [ "$r" -eq 0 ] || san_rc=$r
    done
  done
  step_result "sanitizer" "$san_rc" "$OUT/sanitizer.txt"
else
  log "sanitizer: compute-sanitizer not installed, skipped"
fi

# --- 2b. the attention kernels' registers: no spills to local memory on any arch built. The bundle's ptxas logs
# (deploy/gpu/bundle.sh: every arch of cuda_archs.txt), else make build's, else this host's nvcc for sm_90.
PTXAS_LOG="$BUNDLE/attention_ptxas.txt $BUNDLE/flash_attention_ptxas.txt"
if [ "$DRY" = 1 ] || [ ! -f "$BUNDLE/flash_attention_ptxas.txt" ]; then
  PTXAS_LOG="$PWD/build/native/attention_ptxas.txt $PWD/build/native/flash_attention_ptxas.txt"
fi
if [ "$DRY" != 1 ] && [ ! -f "${PTXAS_LOG##* }" ] && command -v nvcc > /dev/null 2>&1; then
  P=$(mktemp -d /tmp/ringtune-ptxas.XXXXXX)
  for f in attention flash_attention; do
    timeout "$(budget 120)" nvcc -std=c++17 -arch=sm_90 -Xptxas -v -Inative/cuda -Inative/src -c "native/cuda/$f.cu" \
      -o /dev/null > "$P/${f}_ptxas.txt" 2>&1
  done
  echo "90" > "$P/cuda_archs.txt"
  PTXAS_LOG="$P/attention_ptxas.txt $P/flash_attention_ptxas.txt"
fi
if [ ! -f "${PTXAS_LOG%% *}" ]; then
  log "registers: skipped (no ptxas log: no nvcc at build time here, and none in the bundle)"
else
  {
    echo "== attention registers ($PTXAS_LOG)"
    PTXAS_LOG=$PTXAS_LOG deploy/scripts/check-attention-registers.sh
  } >> "$HOST" 2>&1
  rc=$?
  grep '^attention registers' "$HOST" | while read -r line; do log "$line"; done
  step_result "registers" "$rc" "$HOST"
fi

# --- 3. the CPU test driver (no Node.js) -------------------------------------------------------------------
if [ "$DRY" = 1 ]; then
  log "native tests: skipped (dry run: make test runs them)"
elif [ -x "$NATIVE_TEST" ]; then
  timeout "$(budget 90)" "${RT[@]}" "$NATIVE_TEST" > "$OUT/native_test.txt" 2>&1
  rc=$?
  log "native tests: $(grep -E '^[0-9]+ tests' "$OUT/native_test.txt" || echo 'no count')"
  step_result "native tests" "$rc" "$OUT/native_test.txt"
else
  log "native tests: $NATIVE_TEST not in the bundle, skipped"
fi

# --- 4. end to end through the product ------------------------------------------------------------------
# The bundle's tree (its node, dist/, node_modules, addon and GPU library, nats-server) where the archive held
# one; else this tree's dist/ with the host's node.
E2E=(RT_LIBS="$RT_LIBS" RINGTUNE_CUBLASLT="$LT" DEVICE="$E2E_DEVICE" EVIDENCE="$([ "$DRY" = 1 ] && echo 0 || echo 1)")
if [ -n "$TREE" ]; then
  log "end to end: in the bundle's tree $TREE, node $("$TREE/bin/node" --version 2>&1)"
  timeout "$(budget 300)" env -u RINGTUNE_CUDA_LIBRARY "${E2E[@]}" E2E_TREE="$TREE" deploy/gpu/e2e_checks.sh > "$OUT/e2e.txt" 2>&1
  step_result "end to end" $? "$OUT/e2e.txt"
elif command -v node > /dev/null 2>&1 && [ -f dist/cli/ringtune.js ]; then
  log "end to end: in this tree, node $(node --version 2>&1)"
  timeout "$(budget 300)" env "${E2E[@]}" deploy/gpu/e2e_checks.sh > "$OUT/e2e.txt" 2>&1
  step_result "end to end" $? "$OUT/e2e.txt"
else
  log "end to end: skipped (no tree in the bundle, and no node with a built dist/ in this tree)"
fi

# --- 5. benchmark: make bench-gpu's script on the bundle's bench (bench/cuda/bench_gpu.sh: the GEMM peak, attention
# alone, the three shapes' steps with MFU against 989 TFLOP/s and the measured peak, and PyTorch eager and
# torch.compile on the same shapes where torch sees the GPU). The dry run takes the same script on the emulator's
# bench, on its tiny smoke shapes, without torch.
RESERVE=0
: > "$OUT/bench.txt"
if [ "$DRY" = 1 ] && [ "${DRY_BENCH:-1}" = 0 ]; then
  log "bench: skipped (DRY_BENCH=0; make test runs bench_gpu.sh --smoke on the emulator in deploy/scripts/cuda-tests.sh)"
elif [ "$DRY" = 1 ]; then
  echo "== bench/cuda/bench_gpu.sh --smoke (the emulator's bench: timings mean nothing)" >> "$OUT/bench.txt"
  timeout "$(budget 60)" env BENCH="${EMU_BENCH:-$PWD/build/native/ringtune_cuda_emu_bench}" BENCH_TORCH=0 \
    bench/cuda/bench_gpu.sh --smoke >> "$OUT/bench.txt" 2>&1
  step_result "bench (smoke, emulator)" $? "$OUT/bench.txt"
else
  echo "== bench/cuda/bench_gpu.sh (make bench-gpu) with BENCH=$BENCH" >> "$OUT/bench.txt"
  # BENCH: the bundle's (or the rebuilt) binary: nothing is built here, and no make is needed
  timeout "$(budget 400)" env BENCH="$BENCH" BENCH_LIBS="$RT_LIBS" ${LT:+RINGTUNE_CUBLASLT="$LT"} \
    bench/cuda/bench_gpu.sh >> "$OUT/bench.txt" 2>&1
  step_result "bench" $? "$OUT/bench.txt"
fi
sed -n '/^== summary/,$p' "$OUT/bench.txt" | while read -r line; do log "$line"; done

log "files under $OUT: $(find "$OUT" -maxdepth 1 -type f | wc -l) (at most 8)"
log "done in $(($(date +%s) - START))s: $([ $failed -eq 0 ] && echo 'every step that ran passed' || echo 'FAILURES above')"
exit $failed
