#!/usr/bin/env bash
# make cluster-up [WORKERS=N]: a local ringtune cluster in the background: nats-server with JetStream
# (unless NATS_URL names a server to use), the coordinator and N workers, with logs and pid files under
# .run/. Returns once the coordinator answers and all N workers have registered.
#
# Environment:
#   WORKERS=N          workers to start (default: one per usable GPU, deploy/scripts/gpu_workers.sh, else 2 on CPU)
#   WORKER_DEVICE=cpu  CPU workers even where there are GPUs
#   WORKER_MEMORY=SIZE memory each CPU worker reports (8GiB; default: this machine's RAM shared among them)
#   NATS_URL=URL       use this NATS server (JetStream enabled) instead of starting one
#   NATS_PORT=P        port of the server started here (default 4222); NATS_HOST=ADDR its listen address
#                      (default 127.0.0.1; 0.0.0.0 lets workers on other machines in)
#   INSECURE=1         a server without users (every process started with --insecure); by default the
#                      server started here has a user per role and one per worker (deploy/nats/auth.conf,
#                      worker_user.conf) whose passwords are generated into .run/auth/<role>.env and
#                      .run/auth/worker-<id>.env, where the ringtune commands find them
#   TLS=1              NATS over TLS with client certificates (for connections that leave the host): a CA, a
#                      server certificate and one client certificate per role and per worker are generated into
#                      .run/tls/ (deploy/scripts/tls-certs.sh; TLS_HOSTS="name addr" more names the server is
#                      reached by); each certificate is mapped to its NATS user (verify_and_map), so a password is
#                      no use without its role's certificate. Every process gets --tls-ca/--tls-cert/--tls-key;
#                      .run/auth/<role>.env names them too
#   RINGTUNE_DATA_ROOT, RINGTUNE_OUTPUT_ROOT  where jobs may read and write (default: the checkout)
#   STANDBY=0          no standby coordinator (by default a second one stands by to take over)
#   CLUSTER_UP_TIMEOUT=S  seconds to wait for the coordinator and workers (default 60)
#   DASHBOARD_PORT=P   port of the coordinator's dashboard and its /metrics (default 8080)
#   WORKER_METRICS_PORT=P  worker k serves Prometheus /metrics on P+k (default 9464; 0: ports the system picks)
#   HTTP_HOST=ADDR     address the dashboard and /metrics listen on (default 127.0.0.1)
#   LOG_LEVEL=LEVEL    level of the JSON logs in the log files (default info)
#   SERVE=DIR          also serve the base model in DIR: every worker holds it (worker --serve) and the
#                      coordinator routes each request to the least loaded worker holding its model
#   SERVE_ADAPTERS="NAME=DIR|JOB_ID ..."  adapters the workers serve from the start (more load at run time)
#   SERVE_HTTP=HOST:PORT  the coordinator's OpenAI-compatible HTTP address (default 127.0.0.1:8000)
#   SERVE_API_KEY_FILE=FILE  the key HTTP clients of SERVE must send (Authorization: Bearer KEY); default: one
#                      generated into .run/auth/serve-api-key
set -euo pipefail
source "$(dirname "$0")/cluster_lib.sh"
cd "$RINGTUNE_ROOT"

CLI="$RINGTUNE_ROOT/dist/cli/ringtune.js"
TIMEOUT=${CLUSTER_UP_TIMEOUT:-60}

die() { echo "cluster-up: $*" >&2; exit 1; }

[ -f "$CLI" ] || die "$CLI is missing: run 'make build' first (make cluster-up does)"

# --- already up? ------------------------------------------------------------------------------------
mapfile -t existing < <(pid_files)
if [ ${#existing[@]} -gt 0 ]; then
  alive=()
  for f in "${existing[@]}"; do live_pid "$f" >/dev/null && alive+=("$(basename "$f" .pid)"); done
  if [ ${#alive[@]} -gt 0 ]; then
    echo "the cluster is already up (${alive[*]}; logs in $LOG_DIR): 'make cluster-down' stops it"
    exit 0
  fi
  echo "removing stale pid files of a cluster that is no longer running"
  rm -f "${existing[@]}"
fi
mkdir -p "$RUN_DIR" "$LOG_DIR"

# --- workers and their devices ------------------------------------------------------------------------
# One worker per usable GPU (deploy/scripts/gpu_workers.sh: each GPU the worker's own device check accepts; the
# others are named with the reason), else CPU workers.
mapfile -t gpu_devices < <("$RINGTUNE_ROOT/deploy/scripts/gpu_workers.sh")
gpus=${#gpu_devices[@]}
if [ -n "${WORKERS:-}" ]; then
  [[ $WORKERS =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive number, got '$WORKERS'"
  workers=$WORKERS
elif [ "$gpus" -gt 0 ]; then
  workers=$gpus
else
  workers=2
fi
ids=()
for ((k = 0; k < workers; k++)); do ids+=("worker-$k"); done
# CPU workers on one machine share its cores: each gets its share of threads (OpenMP and OpenBLAS), or
# they oversubscribe the cores and all run slower than one would.
cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)
threads=$(( cores / workers )); [ "$threads" -ge 1 ] || threads=1
# CPU workers on one machine share its RAM: each reports its share, so jobs that cannot fit are refused.
mem_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null || true)
memory_flag=()
if [ -n "${WORKER_MEMORY:-}" ]; then memory_flag=(--memory "$WORKER_MEMORY")
elif [ "${mem_kib:-0}" -gt 0 ]; then memory_flag=(--memory "$(( mem_kib / workers ))KiB"); fi

# start NAME COMMAND...: runs COMMAND in its own session (a Ctrl-C in this terminal does not reach it),
# output to logs/NAME.log; the process writes its own pid before exec, so the pid file names exactly it.
started=()
start() {
  local name=$1; shift
  rm -f "$RUN_DIR/$name.pid"
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$RUN_DIR/$name.pid" "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
  local i
  for i in $(seq 50); do [ -s "$RUN_DIR/$name.pid" ] && break; sleep 0.1; done
  started+=("$name")
}

fail() {
  echo "cluster-up: $*" >&2
  local name
  for name in "${started[@]}"; do
    echo "--- last lines of $LOG_DIR/$name.log ---" >&2
    tail -n 20 "$LOG_DIR/$name.log" >&2 || true
  done
  echo "--- stopping what was started ---" >&2
  "$RINGTUNE_ROOT/deploy/scripts/cluster-down.sh" >&2 || true
  exit 1
}

# Fresh passwords for the four NATS users of a server started here, one file per role under .run/auth/
# (only this user may read them): the coordinator, workers and ringtune commands of this checkout read
# their role's file when given no other credentials. nats-server parses a variable's value as a config
# value, so a password starting with a digit would read as a number: each starts with a letter.
# Each worker is a user of its own (worker-<id>), so that none can take another's commands or speak for it; each
# user reads replies only under its own inbox prefix.
write_credentials() {
  local role
  (umask 077 && mkdir -p "$RUN_DIR/auth")
  rm -f "$RUN_DIR"/auth/worker*.env
  for role in coordinator client serve "${ids[@]/#/worker-}"; do
    (umask 077 && printf 'NATS_USER=%s\nNATS_PASSWORD=%s\nNATS_INBOX_PREFIX=_INBOX_%s\n' "$role" \
      "p$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" "$role" >"$RUN_DIR/auth/$role.env")
  done
}
role_password() { sed -n 's/^NATS_PASSWORD=//p' "$RUN_DIR/auth/$1.env"; }
# The server's config with this cluster's worker users: deploy/nats/nats-server.conf and auth.conf rendered
# with a user per worker, in .run/auth/ (an include is resolved relative to the including file).
auth_server_config() {
  render_auth_conf "${ids[@]}" >"$RUN_DIR/auth/auth.conf" || die "could not write the NATS users"
  {
    echo "# written by cluster-up: the cluster's NATS server with a user per role and per worker"
    echo "include \"$(realpath --relative-to="$RUN_DIR/auth" "$RINGTUNE_ROOT/deploy/nats/nats-server.conf")\""
    echo "include \"auth.conf\""
  } >"$RUN_DIR/auth/nats-server-auth.conf"
  echo "$RUN_DIR/auth/nats-server-auth.conf"
}
# The environment nats-server reads the passwords from (NAME=VALUE words for env).
password_env() {
  local id
  echo "RINGTUNE_COORDINATOR_PASSWORD=$(role_password coordinator)"
  echo "RINGTUNE_CLIENT_PASSWORD=$(role_password client)"
  echo "RINGTUNE_SERVE_PASSWORD=$(role_password serve)"
  for id in "${ids[@]}"; do echo "$(worker_password_var "$id")=$(role_password "worker-$id")"; done
}

# TLS=1: the CA and certificates in .run/tls/ (one per role and one per worker), and a server config that is
# `base` plus a tls block: with users, each client certificate is mapped to its NATS user (verify_and_map), so a
# connection is the user its certificate names and must still give that user's password; without users
# (INSECURE=1), any certificate of the CA gets in (verify). nats-server logs "user required from cert" for each
# connection that also names its user: the password is checked all the same. nats-server resolves an include relative to the
# including file, so the path to `base` is written relative to .run/tls/.
TLS_DIR=$RUN_DIR/tls
tls_server_config() {
  "$RINGTUNE_ROOT/deploy/scripts/tls-certs.sh" "$TLS_DIR" "${ids[@]}" >/dev/null || die "could not make the TLS certificates"
  local conf=$TLS_DIR/nats-server-tls.conf mode=verify_and_map
  [ "${INSECURE:-}" = 1 ] && mode=verify
  {
    echo "# written by cluster-up (TLS=1): $1 over TLS, every client with a certificate of this CA ($mode)"
    echo "include \"$(realpath --relative-to="$TLS_DIR" "$1")\""
    render_tls_conf "$TLS_DIR" "$mode"
  } >"$conf"
  echo "$conf"
}
# tls_flags NAME: the CA and the client certificate NAME (a role, or worker-<id>)
tls_flags() { echo "--tls-ca $TLS_DIR/ca.pem --tls-cert $TLS_DIR/$1.pem --tls-key $TLS_DIR/$1-key.pem"; }
# The ringtune commands of this checkout read .run/auth/<role>.env: with TLS they find the files there too.
add_tls_to_credentials() {
  local role
  for role in coordinator client serve "${ids[@]/#/worker-}"; do
    printf 'NATS_CA=%s\nNATS_CERT=%s\nNATS_KEY=%s\n' "$TLS_DIR/ca.pem" "$TLS_DIR/$role.pem" "$TLS_DIR/$role-key.pem" \
      >>"$RUN_DIR/auth/$role.env"
  done
}

# Whether something accepts TCP connections at host:port (bash's /dev/tcp; no extra tools needed).
listening() { timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# --- NATS -----------------------------------------------------------------------------------------------
if [ -n "${NATS_URL:-}" ]; then
  [ "${TLS:-}" = 1 ] && die "TLS=1 secures the server started here; for the server at NATS_URL give NATS_CA, NATS_CERT and NATS_KEY"
  url=$NATS_URL
  hostport=${url%%,*}; hostport=${hostport#*://}; hostport=${hostport##*@}; hostport=${hostport%%/*}
  host=${hostport%:*}; port=${hostport##*:}; [ "$host" = "$hostport" ] && port=4222
  listening "$host" "$port" || die "no NATS server at $url (NATS_URL): start it, or unset NATS_URL to have one started here"
  echo "using the NATS server at $url (NATS_URL); it must have JetStream enabled"
else
  port=${NATS_PORT:-4222}
  bind=${NATS_HOST:-127.0.0.1}
  if listening 127.0.0.1 "$port"; then
    die "port $port is taken. If that is a NATS server with JetStream, use it: NATS_URL=nats://127.0.0.1:$port make cluster-up; else pick another port: NATS_PORT=4223 make cluster-up"
  fi
  command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || die "nats-server is not installed: 'make deps' installs it"
  nats_bin=$(command -v nats-server || echo /usr/sbin/nats-server)
  url=nats://127.0.0.1:$port
  if [ "${INSECURE:-}" = 1 ]; then
    nats_conf=$RINGTUNE_ROOT/deploy/nats/nats-server.conf
    [ "${TLS:-}" = 1 ] && nats_conf=$(tls_server_config "$nats_conf")
    echo "cluster-up: warning: INSECURE=1: NATS without authentication, anyone who reaches port $port is trusted" >&2
    start nats "$nats_bin" -c "$nats_conf" -a "$bind" -p "$port" -js -sd "$RUN_DIR/nats"
  else
    write_credentials
    nats_conf=$(auth_server_config)
    [ "${TLS:-}" = 1 ] && nats_conf=$(tls_server_config "$nats_conf")
    [ "${TLS:-}" = 1 ] && add_tls_to_credentials
    # in nats-server's environment only (never on a command line, where ps would show them)
    mapfile -t passwords < <(password_env)
    export "${passwords[@]}"
    start nats "$nats_bin" -c "$nats_conf" -a "$bind" -p "$port" -js -sd "$RUN_DIR/nats"
    for p in "${passwords[@]}"; do unset "${p%%=*}"; done
  fi
  for i in $(seq 100); do listening 127.0.0.1 "$port" && break; sleep 0.1; done
  listening 127.0.0.1 "$port" || fail "nats-server did not start listening on port $port"
fi
echo "$url" > "$RUN_DIR/nats_url"

# --- coordinator and workers ------------------------------------------------------------------------------
insecure=()
[ "${INSECURE:-}" = 1 ] && insecure=(--insecure)
http_host=${HTTP_HOST:-127.0.0.1}
dashboard_port=${DASHBOARD_PORT:-8080}
metrics_port=${WORKER_METRICS_PORT:-9464}
[[ $dashboard_port =~ ^[0-9]+$ ]] || die "DASHBOARD_PORT must be a port number, got '$dashboard_port'"
[[ $metrics_port =~ ^[0-9]+$ ]] || die "WORKER_METRICS_PORT must be a port number, got '$metrics_port'"
if [ "$dashboard_port" != 0 ] && listening 127.0.0.1 "$dashboard_port"; then
  fail "port $dashboard_port (the dashboard) is taken: pick another, e.g. DASHBOARD_PORT=8081 make cluster-up"
fi
# Serving (SERVE=BASE): the workers hold the base, the coordinator routes requests to them.
serve_coordinator=()
serve_worker=()
if [ -n "${SERVE:-}" ]; then
  [ -f "$SERVE/config.json" ] || fail "SERVE=$SERVE is not a model folder (no config.json)"
  serve_http=${SERVE_HTTP:-127.0.0.1:8000}
  # Like `ringtune serve`, the routed door takes only clients that send its key.
  if [ -n "${SERVE_API_KEY_FILE:-}" ]; then
    [ -s "$SERVE_API_KEY_FILE" ] || fail "SERVE_API_KEY_FILE=$SERVE_API_KEY_FILE is missing or empty"
    serve_key_file=$SERVE_API_KEY_FILE
  else
    serve_key_file=$RUN_DIR/auth/serve-api-key
    (umask 077 && mkdir -p "$RUN_DIR/auth" && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$serve_key_file" && echo >>"$serve_key_file")
  fi
  serve_coordinator=(--serve-http "$serve_http" --api-key-file "$serve_key_file")
  # Adapters loaded at run time come from job outputs (or folders) under the output root.
  serve_worker=(--serve "$SERVE" --adapter-root "${RINGTUNE_OUTPUT_ROOT:-$RINGTUNE_ROOT}")
  for a in ${SERVE_ADAPTERS:-}; do serve_worker+=(--serve-adapter "$a"); done
fi
worker_http() { if [ "$metrics_port" = 0 ]; then echo "$http_host:0"; else echo "$http_host:$((metrics_port + $1))"; fi; }
# role_flags NAME: --insecure and, with TLS=1, the certificate NAME, a role or worker-<id> (paths without spaces)
role_flags() {
  echo "${insecure[*]}"
  [ "${TLS:-}" = 1 ] && tls_flags "$1"
  return 0
}
# shellcheck disable=SC2046 # word splitting of role_flags is intended
start coordinator node "$CLI" coordinator --nats "$url" --http "$http_host:$dashboard_port" \
  "${serve_coordinator[@]}" $(role_flags coordinator)
for ((k = 0; k < workers; k++)); do
  id=${ids[$k]}
  if [ "$gpus" -gt 0 ]; then
    # shellcheck disable=SC2046
    start "$id" node "$CLI" worker --nats "$url" --id "$id" --device "${gpu_devices[$((k % gpus))]}" --http "$(worker_http "$k")" \
      "${serve_worker[@]}" $(role_flags "worker-$id")
  else
    # shellcheck disable=SC2046
    OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads start "$id" node "$CLI" worker --nats "$url" --id "$id" \
      "${memory_flag[@]}" --http "$(worker_http "$k")" "${serve_worker[@]}" $(role_flags "worker-$id")
  fi
done

# --- wait until the coordinator answers and every worker has registered -----------------------------------
# Count only our workers (a shared NATS_URL server may have others), and only those not lost.
registered() {
  # shellcheck disable=SC2046
  node "$CLI" cluster status --json --nats "$url" $(role_flags client) 2>/dev/null | node -e '
    const ids = new Set(process.argv.slice(1));
    const s = JSON.parse(require("fs").readFileSync(0, "utf8"));
    console.log(s.workers.filter((w) => ids.has(w.worker_id) && w.state !== "lost").length);
  ' "${ids[@]}" 2>/dev/null || echo -1
}
deadline=$((SECONDS + TIMEOUT))
while :; do
  for name in "${started[@]}"; do
    live_pid "$RUN_DIR/$name.pid" >/dev/null || fail "$name exited during start-up (log: $LOG_DIR/$name.log)"
  done
  n=$(registered)
  [ "$n" -ge "$workers" ] && break
  if [ $SECONDS -ge $deadline ]; then
    if [ "$n" -lt 0 ]; then fail "the coordinator did not answer 'ringtune cluster status' within ${TIMEOUT}s"
    else fail "$n of $workers workers registered within ${TIMEOUT}s"; fi
  fi
  sleep 0.5
done

# A standby coordinator (STANDBY=0: none), started once the first is active: it takes over the lease, the
# jobs and the dashboard's port within the lease TTL when the active one stops or hangs.
if [ "${STANDBY:-1}" != 0 ]; then
  # shellcheck disable=SC2046
  start coordinator-standby node "$CLI" coordinator --nats "$url" --http "$http_host:$dashboard_port" \
    "${serve_coordinator[@]}" $(role_flags coordinator)
fi

if [ -n "${SERVE:-}" ]; then
  echo "serving $SERVE on http://$serve_http/v1 (the coordinator routes to the workers) and NATS ringtune.serve.<model>.chat"
  echo "  HTTP clients send the key in $serve_key_file (Authorization: Bearer KEY)"
fi

if [ "$gpus" -gt 0 ]; then devices="on $gpus GPU(s)"; else devices="on CPU, $threads thread(s) each"; fi
[ "${TLS:-}" = 1 ] && echo "  NATS over TLS: CA and client certificates in $TLS_DIR (other machines need ca.pem and a client certificate)"
standby=""
if [ "${STANDBY:-1}" != 0 ]; then standby=" (and a standby)"; fi
echo "ringtune cluster up: NATS at $url, a coordinator$standby and $workers worker(s) $devices"
dashboard_url=$(grep -o 'http://[^ ]*' "$LOG_DIR/coordinator.log" 2>/dev/null | head -n 1 || true)
echo "  dashboard: ${dashboard_url:-http://$http_host:$dashboard_port/} (Prometheus: /metrics there and on each worker)"
echo "  logs:   $LOG_DIR/{$(IFS=,; echo "${started[*]}")}.log (JSON lines; LOG_LEVEL=debug for more)"
echo "  status: node dist/cli/ringtune.js cluster status"
if [ "$url" != nats://127.0.0.1:4222 ]; then echo "  for the ringtune commands: export NATS_URL=$url"; fi
echo "  stop:   make cluster-down"
