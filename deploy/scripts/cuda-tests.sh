#!/usr/bin/env bash
# Runs the CUDA op-test driver where a GPU is present; elsewhere prints one line saying why it did not run,
# so a CPU-only `make test` never passes over the GPU checks in silence.
#   CUDA_TEST: the driver (default build/native/ringtune_cuda_test); extra arguments go to it (a FILTER).
set -uo pipefail
cd "$(dirname "$0")/../.."
CUDA_TEST=${CUDA_TEST:-build/native/ringtune_cuda_test}

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
