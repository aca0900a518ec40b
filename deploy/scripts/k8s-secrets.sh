#!/usr/bin/env bash
# k8s-secrets.sh [DIR]: everything `kubectl apply -k DIR` (default deploy/k8s) reads that is kept out of git,
# made where missing and kept where present, so running it again changes nothing and running it over material
# made by an earlier ringtune adds only what the manifests now ask for (a worker slot's password, a worker
# pod's own TLS certificate):
#   DIR/nats-credentials.env         the roles' NATS passwords (the keys of nats-credentials.example.env)
#   DIR/nats-worker-credentials.env  one password per worker pod (k8s-worker-users.sh passwords)
#   DIR/tls/                         the CA, NATS's certificate, the roles' and one per worker pod
#                                    (k8s-worker-users.sh certs)
# CPU_WORKER_SLOTS, GPU_WORKER_SLOTS and TLS_HOSTS pass to k8s-worker-users.sh.
set -euo pipefail
scripts=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${1:-$scripts/../k8s}
[ -f "$dir/kustomization.yaml" ] || { echo "k8s-secrets: $dir has no kustomization.yaml" >&2; exit 1; }
dir=$(cd "$dir" && pwd)
command -v openssl >/dev/null 2>&1 || { echo "k8s-secrets: openssl is not installed: 'make deps' installs it" >&2; exit 1; }
umask 077

# a letter first: nats-server reads a value starting with a digit as a number
password() { echo "p$(openssl rand -hex 24)"; }

# add_missing_keys FILE KEY...: a fresh password for each KEY that FILE lacks or gives the example's CHANGE-ME
add_missing_keys() {
  local file=$1 key added=0
  shift
  touch "$file"
  sed -i '/^[A-Za-z0-9_-]*=CHANGE-ME$/d' "$file"
  for key in "$@"; do
    grep -q "^$key=" "$file" || { echo "$key=$(password)" >> "$file"; added=$((added + 1)); }
  done
  echo "k8s-secrets: $file: $added password(s) added, $(($# - added)) kept"
}

add_missing_keys "$dir/nats-credentials.env" \
  $(sed -n 's/^\([A-Za-z0-9_-]*\)=.*/\1/p' "$dir/nats-credentials.example.env")
add_missing_keys "$dir/nats-worker-credentials.env" \
  $("$scripts/k8s-worker-users.sh" example | sed -n 's/^\([A-Za-z0-9_]*\)=.*/\1/p')
"$scripts/k8s-worker-users.sh" certs "$dir/tls" > /dev/null
echo "k8s-secrets: $dir/tls: the CA, NATS's certificate, the roles' and $(ls "$dir"/tls/worker-ringtune-worker-*-key.pem | wc -l) worker pods' (existing files kept)"
