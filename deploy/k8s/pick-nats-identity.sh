# Run by each worker pod's init container: copies this pod's own NATS password out of the workers' Secret
# (mounted at $WORKER_CREDENTIALS, one file per key) into $IDENTITY_DIR/password, the only credential the
# worker container mounts. The key is the variable nats-server reads that worker's password from
# (RINGTUNE_WORKER_PASSWORD_ and the pod name in capitals, other characters as '_'), so the server and the
# pod name one password the same way.
set -eu
key="RINGTUNE_WORKER_PASSWORD_$(printf '%s' "$POD_NAME" | tr 'a-z' 'A-Z' | tr -c 'A-Z0-9' '_')"
if [ ! -f "$WORKER_CREDENTIALS/$key" ]; then
  echo "no NATS user for worker $POD_NAME: the ringtune-nats-worker-credentials Secret has no $key" >&2
  echo "(more pods than NATS users: deploy/scripts/k8s-worker-users.sh makes more; see deploy/k8s/README.md)" >&2
  exit 1
fi
umask 077
cp "$WORKER_CREDENTIALS/$key" "$IDENTITY_DIR/password.tmp"
mv "$IDENTITY_DIR/password.tmp" "$IDENTITY_DIR/password"
