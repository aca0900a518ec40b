#!/usr/bin/env bash
# Fails when an attention kernel compiled for sm_90 uses local memory (register spills or a stack frame): the
# per-thread accumulators must stay in registers. Reads the `ptxas -v` logs the build writes (the SIMT
# kernels' build/native/attention_ptxas.txt and the tensor-core kernels' flash_attention_ptxas.txt, made when
# nvcc is found); without nvcc it prints why it did not run.
#   PTXAS_LOG: the logs, space-separated (default both of the above)
set -uo pipefail
cd "$(dirname "$0")/../.."
PTXAS_LOG=${PTXAS_LOG:-build/native/attention_ptxas.txt build/native/flash_attention_ptxas.txt}
read -r -a logs <<< "$PTXAS_LOG"
if [ ! -f "${logs[0]}" ]; then
  echo "attention registers: skipped (no nvcc at build time: ${logs[0]} was not written)"
  exit 0
fi
for log in "${logs[@]}"; do
  if [ ! -f "$log" ]; then
    echo "attention registers: FAILED: ${logs[0]} exists but $log was not written"
    exit 1
  fi
done
awk '
  /Compiling entry function/ { match($0, /function .[^ ]*/); name = substr($0, RSTART + 10, RLENGTH - 10); kernels++ }
  /bytes stack frame/ {
    stack = $(NF - 11) + 0; stores = $(NF - 7) + 0; loads = $(NF - 3) + 0
    if (stack > 0 || stores > 0 || loads > 0) { print "  " name ": " stack " B stack, " stores " B spill stores, " loads " B spill loads"; bad++ }
  }
  /Used [0-9]+ registers/ { match($0, /Used [0-9]+/); r = substr($0, RSTART + 5, RLENGTH - 5) + 0; if (r > maxr) maxr = r }
  END {
    if (kernels == 0) { print "attention registers: FAILED: no kernel in the ptxas log"; exit 1 }
    if (bad > 0) { print "attention registers: FAILED: " bad " of " kernels " sm_90 kernels use local memory"; exit 1 }
    print "attention registers: " kernels " sm_90 kernels, at most " maxr " registers, no local memory"
  }' "${logs[@]}" | if command -v c++filt > /dev/null; then c++filt; else cat; fi
exit "${PIPESTATUS[0]}"
