#!/usr/bin/env bash
# Fails when an attention kernel compiled for sm_90 uses local memory (register spills or a stack frame): the
# per-thread accumulators must stay in registers. Reads the `ptxas -v` log the build writes
# (build/native/attention_ptxas.txt, made when nvcc is found); without nvcc it prints why it did not run.
#   PTXAS_LOG: the log (default build/native/attention_ptxas.txt)
set -uo pipefail
cd "$(dirname "$0")/../.."
PTXAS_LOG=${PTXAS_LOG:-build/native/attention_ptxas.txt}
if [ ! -f "$PTXAS_LOG" ]; then
  echo "attention registers: skipped (no nvcc at build time: $PTXAS_LOG was not written)"
  exit 0
fi
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
  }' "$PTXAS_LOG" | if command -v c++filt > /dev/null; then c++filt; else cat; fi
exit "${PIPESTATUS[0]}"
