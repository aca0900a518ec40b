#!/usr/bin/env bash
# Fails when an attention kernel uses local memory (register spills or a stack frame) on any GPU arch the build
# has code for: the per-thread accumulators must stay in registers on every generation, not only on sm_90.
# Reads the `ptxas -v` logs the build writes (the SIMT kernels' build/native/attention_ptxas.txt and the
# tensor-core kernels' flash_attention_ptxas.txt, made when nvcc is found, one -gencode per arch built); without
# nvcc it prints why it did not run. Every arch of cuda_archs.txt (written beside the logs: the build's
# CMAKE_CUDA_ARCHITECTURES) must have kernels in every log, so a build whose logs miss an arch fails too.
#   PTXAS_LOG: the logs, space-separated (default both of the above)
#   PTXAS_ARCHS: the archs expected ("80-real;86-real;89-real;90"; default cuda_archs.txt beside the first log,
#                else whatever archs the logs hold)
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
archs_file="$(dirname "${logs[0]}")/cuda_archs.txt"
expected=${PTXAS_ARCHS:-$(cat "$archs_file" 2> /dev/null || true)}
# "80-real;86-real;89-real;90" -> "80 86 89 90"
expected=$(echo "$expected" | tr ';, ' '\n\n\n' | grep -o '^[0-9]*a\?' | tr '\n' ' ')
status=0
for log in "${logs[@]}"; do
  awk -v expected="$expected" -v file="$log" '
    /Compiling entry function/ {
      match($0, /function .[^ ]*/); name = substr($0, RSTART + 10, RLENGTH - 10); gsub(/\047/, "", name)
      arch = "?"; if (match($0, /for .sm_[0-9]+a?/)) arch = substr($0, RSTART + 8, RLENGTH - 8)
      kernels[arch]++; total++
    }
    /bytes stack frame/ {
      stack = $(NF - 11) + 0; stores = $(NF - 7) + 0; loads = $(NF - 3) + 0
      if (stack > 0 || stores > 0 || loads > 0) {
        print "  sm_" arch " " name ": " stack " B stack, " stores " B spill stores, " loads " B spill loads"; bad++
      }
    }
    /Used [0-9]+ registers/ { match($0, /Used [0-9]+/); r = substr($0, RSTART + 5, RLENGTH - 5) + 0; if (r > maxr[arch]) maxr[arch] = r }
    END {
      if (total == 0) { print "attention registers: FAILED: no kernel in " file; exit 1 }
      n = split(expected, want, " ")
      for (i = 1; i <= n; i++) if (!(want[i] in kernels)) { print "attention registers: FAILED: " file " has no kernel for sm_" want[i] " (the build has code for it)"; missing++ }
      line = ""
      for (a in kernels) line = line sprintf("%s sm_%s: %d kernels, at most %d registers;", line == "" ? "" : "", a, kernels[a], maxr[a])
      if (bad > 0) { print "attention registers: FAILED: " bad " kernel builds in " file " use local memory"; exit 1 }
      if (missing > 0) exit 1
      sub(/;$/, "", line)
      print "attention registers: " file ":" line ", no local memory"
    }' "$log" | if command -v c++filt > /dev/null; then c++filt; else cat; fi
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
exit "$status"
