#!/usr/bin/env bash
# `make bench-gpu`: the whole GPU benchmark in one run on one machine, then the ratios against the baselines
# measured in that same run. ringtune_cuda_bench --suite prints the machine, the GEMM peak on random data,
# attention alone (tensor cores vs SIMT) and each shape's training step; where PyTorch sees a GPU,
# torch_step.py runs the same shapes in eager (SDPA) and torch.compile; the summary divides ringtune's
# tokens/s by PyTorch's for each shape.
#   bench_gpu.sh [--smoke]   --smoke: tiny shapes, one iteration (the emulator build runs it in make test)
#   BENCH: the benchmark binary (default build/native/ringtune_cuda_bench)
#   BENCH_OUT: where the full log goes (default a temporary file, removed afterwards)
#   BENCH_TORCH=0 skips PyTorch; BENCH_STEPS: timed steps per shape (default 5)
#   BENCH_LIBS: library folders for the bench binary only (a GPU bundle's), ahead of LD_LIBRARY_PATH; PyTorch keeps
#   the host's
set -uo pipefail
cd "$(dirname "$0")/../.."
BENCH=${BENCH:-build/native/ringtune_cuda_bench}
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
if [ ! -x "$BENCH" ]; then
  echo "bench-gpu: FAILED: $BENCH was not built (no working nvcc at cmake time? see the 'CUDA backend' line)" >&2
  exit 1
fi
log=${BENCH_OUT:-$(mktemp)}
[ -z "${BENCH_OUT:-}" ] && trap 'rm -f "$log"' EXIT
: > "$log"

bench_env=(env)
[ -n "${BENCH_LIBS:-}" ] && bench_env+=("LD_LIBRARY_PATH=$BENCH_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
if [ "$SMOKE" = 1 ]; then
  "${bench_env[@]}" "$BENCH" --smoke | tee -a "$log"
else
  "${bench_env[@]}" "$BENCH" --suite --steps "${BENCH_STEPS:-5}" | tee -a "$log"
fi
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
  echo "bench-gpu: FAILED: $BENCH exited with $rc" >&2
  exit 1
fi

configs=$(sed -n 's/^RESULT step config=\([^ ]*\).*/\1/p' "$log")
if [ "${BENCH_TORCH:-1}" = 0 ]; then
  echo "PyTorch: skipped (BENCH_TORCH=0)"
elif ! python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' > /dev/null 2>&1; then
  echo "PyTorch: not run (torch is not importable here, or sees no GPU): no eager/compile ratios in this run"
else
  for c in $configs; do
    if [ "$SMOKE" = 1 ]; then
      python3 bench/cuda/torch_step.py --config "$c" --smoke | tee -a "$log"
    else
      python3 bench/cuda/torch_step.py --config "$c" --steps "${BENCH_STEPS:-5}" | tee -a "$log"
    fi
  done
fi

# The summary: each shape's tokens/s against PyTorch's in this run, and the checks of the issue's targets.
echo
echo "== summary ($(sed -n 's/^RESULT machine name="\([^"]*\)".*/\1/p' "$log"))"
awk '
  function field(k,   i, kv) { for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) return kv[2] } return "" }
  /^RESULT step / && field("failed") == "" { c = field("config"); tps[c] = field("tokens_per_s"); mfu[c] = field("mfu_989_pct"); mfu_gemm[c] = field("mfu_gemm_bf16_pct"); share[c] = field("attention_share_pct"); order[++n] = c }
  /^RESULT torch / { t[field("config") "," field("mode")] = field("tokens_per_s") }
  /^RESULT attention / && field("docs") == 1 { att[field("config")] = field("flash_pct_989") }
  END {
    for (i = 1; i <= n; i++) {
      c = order[i]
      line = sprintf("%-20s %12.0f tokens/s  MFU %6.2f%% of 989, %6.2f%% of the measured bf16 GEMM peak  attention %5.1f%% of the step", c, tps[c], mfu[c], mfu_gemm[c], share[c])
      if (att[c] != "") line = line sprintf("  attention kernels %5.1f%% of 989", att[c])
      for (m = 1; m <= 2; m++) {
        mode = m == 1 ? "eager" : "compile"
        k = c "," mode
        if (k in t && t[k] > 0) line = line sprintf("  %.2fx torch %s", tps[c] / t[k], mode)
        else line = line sprintf("  (no torch %s)", mode)
      }
      print line
    }
    if (n == 0) { print "no step result"; exit 1 }
  }' "$log"
