#!/usr/bin/env bash
# make demo: a local cluster and the bundled demo in two acts, each with its progress, what the model learned
# and where its outputs are; then the cluster goes down again, also on failure or Ctrl-C. `make demo` builds
# first.
#   act 1 (SFT): examples/demo/job.yaml, a small Llama trained from scratch to answer in strict JSON
#   act 2 (DPO): examples/demo/dpo.yaml, a short preference stage on act 1's model (its final/), on pairs whose
#                rejected answer is a value copied wrongly or breaks the JSON-only rule
# At the end the last act's model is served and asked one held-out chat.
#
# Environment (besides cluster-up.sh's: RINGTUNE_RUN_DIR for pid files, logs and the job records, NATS_PORT):
#   DEMO_STAGE=S      all (both acts, the default), sft (act 1 only) or dpo (act 2 only, on the model act 1
#                     left in the output folder; act 1 runs first when there is none)
#   DEMO_JOB=FILE     act 1's job (default examples/demo/job.yaml); without DEMO_OUTPUT only act 1 runs
#   DEMO_DPO_JOB=FILE act 2's job (default examples/demo/dpo.yaml); its model and output are set as above
#   DEMO_STEPS=N      train act 1 N steps instead of its job's max_steps (a shorter try)
#   DEMO_DPO_STEPS=N  train act 2 N steps instead of examples/demo/dpo.yaml's max_steps
#   DEMO_OUTPUT=DIR   write act 1's outputs to DIR and act 2's to DIR/dpo instead of runs/demo and runs/demo/dpo
#   DASHBOARD_PORT=P  port of the live dashboard (default 8080)
set -euo pipefail
source "$(dirname "$0")/cluster_lib.sh"

positive() { [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "demo: $1 must be a positive number, got '$2'" >&2; exit 2; }; }
sft_overrides=()
dpo_overrides=()
if [ -n "${DEMO_STEPS:-}" ]; then
  positive DEMO_STEPS "$DEMO_STEPS"
  sft_overrides+=(--set "max_steps=$DEMO_STEPS")
fi
if [ -n "${DEMO_DPO_STEPS:-}" ]; then
  positive DEMO_DPO_STEPS "$DEMO_DPO_STEPS"
  dpo_overrides+=(--set "max_steps=$DEMO_DPO_STEPS")
fi
# Relative to where the demo was started, not to the job file's folder (which is how --set reads paths).
if [ -n "${DEMO_OUTPUT:-}" ]; then
  sft_overrides+=(--set "output=$(realpath -m -- "$DEMO_OUTPUT")")
  # The coordinator writes only under its output roots: the one asked for joins the default (the checkout).
  export RINGTUNE_OUTPUT_ROOT="${RINGTUNE_OUTPUT_ROOT:-$RINGTUNE_ROOT}:$(realpath -m -- "$DEMO_OUTPUT")"
fi
cd "$RINGTUNE_ROOT"

JOB=${DEMO_JOB:-examples/demo/job.yaml}
DPO_JOB=${DEMO_DPO_JOB:-examples/demo/dpo.yaml}
# act 1's output folder; act 2 reads its final/ and writes into its dpo/
out=${DEMO_OUTPUT:+$(realpath -m -- "$DEMO_OUTPUT")}
[ -n "$out" ] || [ -n "${DEMO_JOB:-}" ] || out=$RINGTUNE_ROOT/runs/demo
STAGE=${DEMO_STAGE:-all}
case $STAGE in
  all | sft | dpo) ;;
  *) echo "demo: DEMO_STAGE must be all, sft or dpo, got '$STAGE'" >&2; exit 2 ;;
esac
if [ -z "$out" ]; then
  [ -z "${DEMO_STAGE:-}" ] || [ "$STAGE" = sft ] || { echo "demo: DEMO_STAGE=$STAGE with DEMO_JOB needs DEMO_OUTPUT (act 2 trains on act 1's final/ there)" >&2; exit 2; }
  STAGE=sft
fi
run_sft=1
run_dpo=1
[ "$STAGE" != sft ] || run_dpo=0
if [ "$STAGE" = dpo ]; then
  if [ -f "$out/final/config.json" ]; then
    run_sft=0
  else
    echo "== no model of act 1 in $out/final: act 1 (SFT) runs first"
  fi
fi
[ $run_dpo = 0 ] || dpo_overrides+=(--set "model.path=$out/final" --set "output=$out/dpo")

# A job never writes over another job's outputs (the coordinator refuses): a previous demo's folder is moved
# aside, whole, to a timestamped name, and the demo says where it went. Act 2 alone keeps act 1's folder and
# moves aside only its own.
move_aside() {
  if [ -n "$1" ] && [ -d "$1" ] && [ -n "$(ls -A -- "$1")" ]; then
    local aside
    aside="$1-$(date +%Y%m%d-%H%M%S)"
    mv -- "$1" "$aside"
    echo "== the previous demo's outputs in $1 were moved to $aside"
  fi
}
if [ $run_sft = 1 ]; then move_aside "$out"; else move_aside "$out/dpo"; fi
RESULT=$RUN_DIR/demo_result.json
DPO_RESULT=$RUN_DIR/demo_dpo_result.json
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
mkdir -p "$RUN_DIR"

# run_act TITLE JOB RESULT [--set K=V]...: submits JOB, follows it, prints what it learned. Its exit status is
# the job's (0: completed); 130 ends the demo.
run_act() {
  local title=$1 job=$2 result=$3 rc
  shift 3
  echo
  echo "== $title: submitting $job (progress below; stdout goes to $result)"
  [ -z "$dashboard" ] || echo "   watch it live in a browser: $dashboard (loss.png in the output folder at the end)"
  set +e
  node "$CLI" submit "$job" "$@" --wait --json --nats "$url" >"$result"
  rc=$?
  set -e
  echo
  if [ $rc -eq 130 ]; then
    echo "demo interrupted" >&2
    exit 130
  fi
  if [ ! -s "$result" ]; then
    echo "demo: the job gave no result (exit $rc); the cluster's logs are in $LOG_DIR" >&2
    return 1
  fi
  echo "== $title: what was learned"
  node "$RINGTUNE_ROOT/dist/cli/summarize_job.js" "$result" || true
  echo "the job record (JSON): $result"
  if [ $rc -ne 0 ]; then
    echo "demo: the job did not complete (exit $rc); the cluster's logs are in $LOG_DIR" >&2
  fi
  return $rc
}

rc=0
last=
if [ $run_sft = 1 ]; then
  run_act "act 1 (SFT)" "$JOB" "$RESULT" ${sft_overrides[@]+"${sft_overrides[@]}"} || rc=$?
  last=$RESULT
fi
if [ $rc -eq 0 ] && [ $run_dpo = 1 ]; then
  echo
  echo "== act 2 (DPO) trains act 1's model on $(grep -c . examples/demo/pairs.jsonl) preference pairs (examples/demo/pairs.jsonl):"
  echo "   the same kind of sentences, the right JSON as the chosen answer and, as the rejected one, a value"
  echo "   copied wrongly, words around the JSON or a wrong field"
  run_act "act 2 (DPO)" "$DPO_JOB" "$DPO_RESULT" "${dpo_overrides[@]}" || rc=$?
  last=$DPO_RESULT
  if [ $rc -eq 0 ] && [ -f "$out/generation_eval.jsonl" ] && [ -f "$out/dpo/generation_eval.jsonl" ]; then
    echo
    node "$RINGTUNE_ROOT/dist/cli/compare_eval_answers.js" "$out/generation_eval.jsonl" "$out/dpo/generation_eval.jsonl" || true
  fi
fi
# The last act's model behind `ringtune serve`, asked a held-out question through the chat API.
if [ $rc -eq 0 ] && [ -n "$last" ]; then
  echo
  node "$RINGTUNE_ROOT/dist/cli/ask_served_model.js" "$last" || rc=$?
fi
exit $rc
