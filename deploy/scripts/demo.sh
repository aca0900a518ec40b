#!/usr/bin/env bash
# make demo: a local cluster, the bundled job (examples/demo/job.yaml: a small Llama trained from scratch
# to answer in strict JSON), its progress, what it learned, where its outputs are; then the cluster goes
# down again, also on failure or Ctrl-C. `make demo` builds first.
#
# Environment (besides cluster-up.sh's: RINGTUNE_RUN_DIR for pid files, logs and the job record, NATS_PORT):
#   DEMO_JOB=FILE     the job to run (default examples/demo/job.yaml)
#   DEMO_STEPS=N      train N steps instead of the job's max_steps (a shorter try)
#   DEMO_OUTPUT=DIR   write the job's outputs to DIR instead of the job's output folder (runs/demo)
#   DASHBOARD_PORT=P  port of the live dashboard (default 8080)
set -euo pipefail
source "$(dirname "$0")/cluster_lib.sh"

overrides=()
if [ -n "${DEMO_STEPS:-}" ]; then
  [[ $DEMO_STEPS =~ ^[1-9][0-9]*$ ]] || { echo "demo: DEMO_STEPS must be a positive number, got '$DEMO_STEPS'" >&2; exit 2; }
  overrides+=(--set "max_steps=$DEMO_STEPS")
fi
# Relative to where the demo was started, not to the job file's folder (which is how --set reads paths).
if [ -n "${DEMO_OUTPUT:-}" ]; then
  overrides+=(--set "output=$(realpath -m -- "$DEMO_OUTPUT")")
  # The coordinator writes only under its output roots: the one asked for joins the default (the checkout).
  export RINGTUNE_OUTPUT_ROOT="${RINGTUNE_OUTPUT_ROOT:-$RINGTUNE_ROOT}:$(realpath -m -- "$DEMO_OUTPUT")"
fi
cd "$RINGTUNE_ROOT"

JOB=${DEMO_JOB:-examples/demo/job.yaml}
# A job never writes over another job's outputs (the coordinator refuses): a previous demo's folder is moved
# aside, whole, to a timestamped name, and the demo says where it went.
out=${DEMO_OUTPUT:+$(realpath -m -- "$DEMO_OUTPUT")}
[ -n "$out" ] || [ -n "${DEMO_JOB:-}" ] || out=$RINGTUNE_ROOT/runs/demo
if [ -n "$out" ] && [ -d "$out" ] && [ -n "$(ls -A -- "$out")" ]; then
  aside="$out-$(date +%Y%m%d-%H%M%S)"
  mv -- "$out" "$aside"
  echo "== the previous demo's outputs in $out were moved to $aside"
fi
RESULT=$RUN_DIR/demo_result.json
CLI="$RINGTUNE_ROOT/dist/cli/ringtune.js"

# Stop the cluster only if this script started it: a cluster that was already up stays up.
already_up=0
for f in $(pid_files); do live_pid "$f" >/dev/null && already_up=1; done
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$already_up" = 0 ]; then
    echo
    "$RINGTUNE_ROOT/deploy/scripts/cluster-down.sh" || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "demo interrupted"; exit 130' INT TERM

echo "== starting a local cluster"
"$RINGTUNE_ROOT/deploy/scripts/cluster-up.sh"
url=$(cat "$RUN_DIR/nats_url")

dashboard=$(grep -o 'http://[^ ]*' "$LOG_DIR/coordinator.log" 2>/dev/null | head -n 1 || true)

echo
echo "== submitting $JOB (progress below; stdout goes to $RESULT)"
[ -z "$dashboard" ] || echo "   watch it live in a browser: $dashboard (loss.png in the output folder at the end)"
mkdir -p "$RUN_DIR"
set +e
node "$CLI" submit "$JOB" "${overrides[@]}" --wait --json --nats "$url" > "$RESULT"
rc=$?
set -e

echo
if [ $rc -eq 130 ]; then
  echo "demo interrupted" >&2
  exit 130
fi
if [ ! -s "$RESULT" ]; then
  echo "demo: the job gave no result (exit $rc); the cluster's logs are in $LOG_DIR" >&2
  exit 1
fi
echo "== what was learned"
node "$RINGTUNE_ROOT/dist/cli/summarize_job.js" "$RESULT" || true
echo "the job record (JSON): $RESULT"
if [ $rc -ne 0 ]; then
  echo "demo: the job did not complete (exit $rc); the cluster's logs are in $LOG_DIR" >&2
fi
# The trained model behind `ringtune serve`, asked a held-out question through the chat API.
if [ $rc -eq 0 ]; then
  echo
  node "$RINGTUNE_ROOT/dist/cli/ask_served_model.js" "$RESULT" || rc=$?
fi
exit $rc
