#!/usr/bin/env bash
# The Kubernetes workers' NATS users: one per worker pod that may exist, named by the pod
# (worker-ringtune-worker-0 .. and worker-ringtune-worker-gpu-0 ..), each allowed only its own subjects, as
# make cluster-up gives each of its workers (the same render_auth_conf, deploy/nats/worker_user.conf).
#
#   k8s-worker-users.sh auth      NATS's users (committed as deploy/k8s/nats-auth.conf; passwords come from
#                                 nats-server's environment, so the file holds no secret)
#   k8s-worker-users.sh passwords one fresh password per worker: deploy/k8s/nats-worker-credentials.env
#                                 (kept out of git), the Secret each worker pod takes its own key from
#   k8s-worker-users.sh example   the same keys with placeholder values (nats-worker-credentials.example.env)
#   k8s-worker-users.sh certs DIR the cluster's TLS material in DIR (deploy/k8s/tls) with one client certificate
#                                 per worker pod, worker-<pod name>.pem (tls-certs.sh), which NATS maps to that
#                                 worker's user alone: the Secret ringtune-nats-worker-tls
#   k8s-worker-users.sh tls-files that Secret's files, as kustomization.yaml lists them
#
# CPU_WORKER_SLOTS and GPU_WORKER_SLOTS set how many pods of each StatefulSet may run: a pod with no user
# stops in its init container saying so. GPU_WORKER_SLOTS must cover autoscaling.yaml's maxReplicaCount.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"
CPU_WORKER_SLOTS=${CPU_WORKER_SLOTS:-4}
GPU_WORKER_SLOTS=${GPU_WORKER_SLOTS:-8}

worker_ids() {
  local i
  for ((i = 0; i < CPU_WORKER_SLOTS; i++)); do echo "ringtune-worker-$i"; done
  for ((i = 0; i < GPU_WORKER_SLOTS; i++)); do echo "ringtune-worker-gpu-$i"; done
}

case "${1:-}" in
  auth)
    echo "# Made by deploy/scripts/k8s-worker-users.sh auth (CPU_WORKER_SLOTS=$CPU_WORKER_SLOTS GPU_WORKER_SLOTS=$GPU_WORKER_SLOTS): do not edit."
    # shellcheck disable=SC2046 # one argument per id, none with spaces
    render_auth_conf $(worker_ids)
    ;;
  passwords | example)
    if [ "$1" = passwords ]; then
      echo "# Each worker pod's NATS password, keyed by the variable nats-server reads it from (keep out of git)."
    else
      echo "# Made by deploy/scripts/k8s-worker-users.sh example. Make the real file, kept out of git, with"
      echo "#   deploy/scripts/k8s-worker-users.sh passwords > deploy/k8s/nats-worker-credentials.env"
    fi
    for id in $(worker_ids); do
      # a letter first: nats-server reads a value starting with a digit as a number
      if [ "$1" = passwords ]; then pw="p$(openssl rand -hex 24)"; else pw=CHANGE-ME; fi
      echo "$(worker_password_var "$id")=$pw"
    done
    ;;
  certs)
    dir=${2:?usage: $0 certs DIR}
    # shellcheck disable=SC2046 # one argument per id, none with spaces
    TLS_HOSTS=${TLS_HOSTS:-nats nats.ringtune.svc nats.ringtune.svc.cluster.local} \
      "$RINGTUNE_ROOT/deploy/scripts/tls-certs.sh" "$dir" $(worker_ids)
    ;;
  tls-files)
    for id in $(worker_ids); do printf '      - tls/worker-%s.pem\n      - tls/worker-%s-key.pem\n' "$id" "$id"; done
    ;;
  *)
    echo "usage: $0 auth|passwords|example|certs DIR|tls-files" >&2
    exit 2
    ;;
esac
