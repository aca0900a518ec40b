#!/usr/bin/env bash
# The CUDA backend's checks on a GPU machine, in one run that fits 10 minutes (TOTAL seconds, default 480):
#   1. ringtune_cuda_test: every op against the CPU backend, fp32 and bf16; both GEMMs against CPU sgemm
#   2. ringtune_cuda_bench: one bf16 training step of the 124M-class model with cuBLASLt, then the own GEMM
#   3. bench/cuda/torch_step.py: the same model in PyTorch, eager and torch.compile
# Results under $OUT (default ./gpu-out): one file per check and summary.txt. Needs build/gpu-bundle
# (deploy/gpu/bundle.sh, run on the build machine; see deploy/gpu/README.md). If the prebuilt binaries cannot run (driver older than
# CUDA 13), they are rebuilt with the host's nvcc (no cmake needed) and the checks rerun.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-./gpu-out}
TOTAL=${TOTAL:-480}
BUNDLE=${BUNDLE:-build/gpu-bundle}
mkdir -p "$OUT"
START=$(date +%s)
left() { echo $(( TOTAL - ($(date +%s) - START) )); }
budget() { local want=$1 l; l=$(left); (( l < want )) && want=$l; (( want < 5 )) && want=5; echo "$want"; }
log() { echo "[$(( $(date +%s) - START ))s] $*" | tee -a "$OUT/summary.txt"; }

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
log "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null)"
log "nvcc: $(nvcc --version 2>/dev/null | tail -1)"

# cuBLASLt: the system's, else PyTorch's pip wheels (nvidia-cublas), else torch/lib
LIBDIRS="$BUNDLE/lib"
for d in $(python3 - <<'PY' 2>/dev/null
import os, glob
try:
    import nvidia.cublas as c; print(os.path.join(list(c.__path__)[0], "lib"))
except Exception: pass
try:
    import torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))
except Exception: pass
PY
); do LIBDIRS="$LIBDIRS:$d"; done
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do [ -d "$d" ] && LIBDIRS="$LIBDIRS:$d"; done
export LD_LIBRARY_PATH="$LIBDIRS:${LD_LIBRARY_PATH:-}"
log "cublasLt candidates: $(for d in ${LIBDIRS//:/ }; do ls "$d"/libcublasLt.so* 2>/dev/null; done | tr '\n' ' ')"

TEST="$BUNDLE/ringtune_cuda_test"
BENCH="$BUNDLE/ringtune_cuda_bench"

rebuild() {  # with the host's nvcc, into $OUT/rebuild (the sources are in this working tree)
  local R="$OUT/rebuild"; mkdir -p "$R"
  log "rebuilding with the host nvcc"
  local F="-std=c++17 -O3 -arch=sm_90 -Inative/cuda -Inative/src -Inative/test -I$BUNDLE/include"
  nvcc $F native/cuda/*.cu native/cuda/gemm_cublaslt.cpp bench/cuda/bench_step.cu -o "$R/ringtune_cuda_bench" -ldl \
    > "$R/build_bench.txt" 2>&1 && BENCH="$R/ringtune_cuda_bench"
  nvcc $F -Xcompiler -fopenmp native/cuda/*.cu native/cuda/gemm_cublaslt.cpp native/cuda_test/*.cpp native/test/test_runner.cpp \
    native/src/config.cpp native/src/param_table.cpp native/src/activations.cpp native/src/lora.cpp native/src/model.cpp \
    native/src/generate.cpp native/src/tensor_io.cpp -o "$R/ringtune_cuda_test" -L"$BUNDLE/lib" -lopenblas -lgomp -ldl \
    > "$R/build_test.txt" 2>&1 && TEST="$R/ringtune_cuda_test"
  log "rebuild: bench $( [ "$BENCH" = "$R/ringtune_cuda_bench" ] && echo ok || echo FAILED), test $( [ "$TEST" = "$R/ringtune_cuda_test" ] && echo ok || echo FAILED)"
}

timeout "$(budget 150)" "$TEST" > "$OUT/cuda_test.txt" 2>&1
rc=$?
if grep -q "insufficient\|no CUDA device" "$OUT/cuda_test.txt" && command -v nvcc > /dev/null; then
  rebuild
  timeout "$(budget 150)" "$TEST" > "$OUT/cuda_test.txt" 2>&1
  rc=$?
fi
log "cuda_test rc=$rc: $(grep -E '^[0-9]+ tests' "$OUT/cuda_test.txt")"
grep -E "^FAIL" "$OUT/cuda_test.txt" | tee -a "$OUT/summary.txt"

timeout "$(budget 100)" "$BENCH" --steps 5 > "$OUT/bench_cublaslt.txt" 2>&1
log "bench (auto gemm) rc=$?: $(grep -E '^RESULT|gemm:' "$OUT/bench_cublaslt.txt" | tr '\n' ' ')"
timeout "$(budget 80)" "$BENCH" --steps 3 --gemm own > "$OUT/bench_own_gemm.txt" 2>&1
log "bench (own gemm) rc=$?: $(grep -E '^RESULT' "$OUT/bench_own_gemm.txt")"

if python3 -c "import torch; assert torch.cuda.is_available()" 2> /dev/null; then
  timeout "$(budget 200)" python3 bench/cuda/torch_step.py --steps 10 > "$OUT/torch_step.txt" 2>&1
  log "torch rc=$?: $(grep -E '^RESULT|failed' "$OUT/torch_step.txt" | tr '\n' ' ')"
else
  log "torch: not available"
fi
log "done in $(( $(date +%s) - START ))s"
