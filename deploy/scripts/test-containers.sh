#!/usr/bin/env bash
# make test-containers: the cluster as containers of the image `make image` builds (nats-server, the
# coordinator, workers on a podman network), driven by testcontainers over podman's Docker-compatible API.
# podman serves that API on a socket of its own in a temp folder for the length of the run; testcontainers'
# Ryuk reaper is off (its image comes from Docker Hub): the test removes what it starts.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/podman/containers.conf}
start=$SECONDS
images=$(./deploy/image/build.sh)
echo "images ready in $((SECONDS - start)) s: $(echo $images)"
export RINGTUNE_IMAGE=$(sed -n 1p <<<"$images")
export RINGTUNE_NATS_IMAGE=$(sed -n 2p <<<"$images")
sock_dir=$(mktemp -d)
podman system service --time=0 "unix://$sock_dir/podman.sock" &
service=$!
cleanup() {
  kill "$service" 2>/dev/null || true
  wait "$service" 2>/dev/null || true
  rm -rf "$sock_dir"
}
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$sock_dir/podman.sock" ] && break; sleep 0.1; done
export DOCKER_HOST=unix://$sock_dir/podman.sock TESTCONTAINERS_RYUK_DISABLED=true
node --test --test-concurrency=1 dist/test/containers/*.test.js
