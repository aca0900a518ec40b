# Shared by cluster-up.sh and cluster-down.sh (sourced): where a local cluster keeps its pid files and
# logs, and how a pid file is checked to still name one of our processes (pids are reused).
RINGTUNE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RUN_DIR=${RINGTUNE_RUN_DIR:-$RINGTUNE_ROOT/.run}
LOG_DIR=$RUN_DIR/logs

# The pid in a pid file, if that process is alive and is a ringtune or nats-server process.
live_pid() {
  local pid cmd
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  cmd=$(ps -o args= -p "$pid" 2>/dev/null) || return 1
  [[ $cmd == *ringtune.js* || $cmd == *nats-server* ]] || return 1
  echo "$pid"
}

# The pid files of a cluster, stop order: workers, then the coordinator, then NATS (last, so the
# coordinator can still write its job records while it stops).
pid_files() {
  local f
  for f in "$RUN_DIR"/worker-*.pid; do [ -e "$f" ] && echo "$f"; done
  [ -e "$RUN_DIR/coordinator-standby.pid" ] && echo "$RUN_DIR/coordinator-standby.pid"
  [ -e "$RUN_DIR/coordinator.pid" ] && echo "$RUN_DIR/coordinator.pid"
  [ -e "$RUN_DIR/nats.pid" ] && echo "$RUN_DIR/nats.pid"
  return 0
}

# render_auth_conf ID...: deploy/nats/auth.conf with a user per worker (deploy/nats/worker_user.conf) at its
# marker. Each worker's password is the variable RINGTUNE_WORKER_PASSWORD_<ID in capitals, others as _>.
worker_password_var() { printf 'RINGTUNE_WORKER_PASSWORD_%s' "$(printf '%s' "$1" | tr 'a-z' 'A-Z' | tr -c 'A-Z0-9' '_')"; }
render_auth_conf() {
  local id env users
  users=$(mktemp)
  for id in "$@"; do
    [[ $id =~ ^[A-Za-z0-9_-]+$ ]] || { echo "worker id '$id': letters, digits, '_' or '-' only" >&2; rm -f "$users"; return 1; }
    env=$(worker_password_var "$id"); env=${env#RINGTUNE_WORKER_PASSWORD_}
    grep -v '^#' "$RINGTUNE_ROOT/deploy/nats/worker_user.conf" | sed -e "s/WORKER_ID/$id/g" -e "s/WORKER_ENV/$env/g" >>"$users"
  done
  awk -v users="$users" '/# @worker-users@/ { while ((getline line < users) > 0) print line; next } { print }' \
    "$RINGTUNE_ROOT/deploy/nats/auth.conf"
  rm -f "$users"
}

# render_tls_conf TLS_DIR MODE: nats-server's tls block for the material tls-certs.sh made in TLS_DIR. MODE
# verify_and_map (a server with users): a client certificate of that CA is required and names the user the
# connection is, so each role, and each worker, gets in only with its own certificate (and its password);
# verify (a server without users, INSECURE=1): any certificate of that CA gets in.
render_tls_conf() {
  local dir=$1 mode=$2
  [[ $mode == verify || $mode == verify_and_map ]] || { echo "render_tls_conf: mode verify or verify_and_map" >&2; return 1; }
  echo "tls {"
  echo "  cert_file: \"$dir/server.pem\""
  echo "  key_file: \"$dir/server-key.pem\""
  echo "  ca_file: \"$dir/ca.pem\""
  echo "  $mode: true"
  echo "  timeout: 5"
  echo "}"
}
