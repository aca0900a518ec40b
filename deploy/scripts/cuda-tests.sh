#!/usr/bin/env bash
# Runs the CUDA op tests: on every host the emulator build (the same kernels compiled by g++ against
# native/emu and run on the CPU, with guard-byte, pointer and barrier checks), then, where a GPU is present,
# the nvcc build on the GPU; without a GPU it prints one line saying why that part did not run, so a
# CPU-only `make test` never passes over the GPU checks in silence.
#   CUDA_EMU_TEST: the emulator driver (default build/native/ringtune_cuda_emu_test)
#   CUDA_TEST: the GPU driver (default build/native/ringtune_cuda_test); extra arguments go to both (a FILTER).
set -uo pipefail
cd "$(dirname "$0")/../.."
CUDA_EMU_TEST=${CUDA_EMU_TEST:-build/native/ringtune_cuda_emu_test}
CUDA_TEST=${CUDA_TEST:-build/native/ringtune_cuda_test}

./deploy/scripts/check-attention-registers.sh || exit 1
if [ ! -x "$CUDA_EMU_TEST" ]; then
  echo "CUDA op tests (emulator): FAILED: $CUDA_EMU_TEST was not built" >&2
  exit 1
fi
echo "CUDA op tests on the CPU emulator: $CUDA_EMU_TEST"
"$CUDA_EMU_TEST" "$@" || exit 1
# make bench-gpu's script and benchmark, end to end on tiny shapes under the emulator (its timings mean nothing)
if [ $# -eq 0 ]; then
  bench=${CUDA_EMU_BENCH:-build/native/ringtune_cuda_emu_bench}
  echo "GPU benchmark smoke run on the CPU emulator: $bench"
  smoke_log=$(mktemp)
  if ! BENCH=$bench ./bench/cuda/bench_gpu.sh --smoke > "$smoke_log" 2>&1; then
    cat "$smoke_log"
    rm -f "$smoke_log"
    echo "GPU benchmark smoke run: FAILED" >&2
    exit 1
  fi
  tail -n 3 "$smoke_log"
  rm -f "$smoke_log"
fi

if ! command -v nvidia-smi > /dev/null 2>&1; then
  echo "CUDA op tests: skipped (no GPU: nvidia-smi not found)"
  exit 0
fi
gpus=$(nvidia-smi -L 2> /dev/null | grep -c '^GPU ')
if [ "$gpus" -eq 0 ]; then
  echo "CUDA op tests: skipped (no GPU: nvidia-smi lists none)"
  exit 0
fi
# A GPU is here, so the tests must run: a driver that was not built is a failure, not a skip.
if [ ! -x "$CUDA_TEST" ]; then
  echo "CUDA op tests: FAILED: nvidia-smi lists $gpus GPU(s) but $CUDA_TEST was not built (no working nvcc at" \
    "cmake time? see the 'CUDA backend' line of the cmake output)" >&2
  exit 1
fi
echo "CUDA op tests: $gpus GPU(s) listed, running $CUDA_TEST"
exec "$CUDA_TEST" "$@"
