#!/usr/bin/env bash
# make cluster-down: stops exactly the processes named by the pid files under .run/ (cluster-up.sh wrote
# them), and nothing else; removes the pid files. Logs and the JetStream store (job records) stay.
set -euo pipefail
source "$(dirname "$0")/cluster_lib.sh"

mapfile -t files < <(pid_files)
if [ ${#files[@]} -eq 0 ]; then
  echo "no cluster to stop (no pid files under $RUN_DIR)"
  exit 0
fi

# SIGTERM lets each process close cleanly (the coordinator saves job state); after the grace period
# (CLUSTER_DOWN_GRACE seconds, default 15), whatever is left of ours gets SIGKILL, and the summary says so.
stop_group() {
  local f pid name pids=() names=()
  for f in "$@"; do
    name=$(basename "$f" .pid)
    if pid=$(live_pid "$f"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid"); names+=("$name")
    elif pid=$(cat "$f" 2>/dev/null) && [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
      echo "  $name: pid $pid is not a ringtune or nats-server process (reused?): left alone"
    else
      echo "  $name: not running"
    fi
    rm -f "$f"
  done
  local deadline=$((SECONDS + ${CLUSTER_DOWN_GRACE:-15})) i
  for i in "${!pids[@]}"; do
    while kill -0 "${pids[$i]}" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "  ${names[$i]} (pid ${pids[$i]}): still running after SIGTERM, sending SIGKILL"
      kill -KILL "${pids[$i]}" 2>/dev/null || true
      killed+=("${names[$i]}")
    else
      echo "  ${names[$i]} (pid ${pids[$i]}): stopped"
    fi
  done
}

killed=()
echo "stopping the ringtune cluster of $RUN_DIR"
processes=() nats=()
for f in "${files[@]}"; do
  if [ "$(basename "$f")" = nats.pid ]; then nats+=("$f"); else processes+=("$f"); fi
done
[ ${#processes[@]} -gt 0 ] && stop_group "${processes[@]}"
[ ${#nats[@]} -gt 0 ] && stop_group "${nats[@]}"
rm -f "$RUN_DIR/nats_url"
echo "logs are kept in $LOG_DIR"
# Every process stops on SIGTERM within moments, whatever its job is doing: one that needed SIGKILL did not,
# and may have left a job's state or outputs unfinished. Said on stderr, where a script or a person sees it.
if [ ${#killed[@]} -gt 0 ]; then
  echo "cluster-down: ${killed[*]} did not stop within ${CLUSTER_DOWN_GRACE:-15}s of SIGTERM and got SIGKILL (see their logs)" >&2
fi
