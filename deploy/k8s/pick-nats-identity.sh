# Run by each worker pod's init container: copies this pod's own NATS identity into $IDENTITY_DIR, the only
# credential folder the worker container mounts: its password out of the workers' Secret (mounted at
# $WORKER_CREDENTIALS, one file per key) as password, and its client certificate and key out of the workers'
# TLS Secret (at $WORKER_TLS) as cert.pem and key.pem. The password's key is the variable nats-server reads
# that worker's password from (RINGTUNE_WORKER_PASSWORD_ and the pod name in capitals, other characters as
# '_'); the certificate is worker-<pod name>.pem, whose name is the NATS user it maps to. So the server and
# the pod name one identity the same way, and no worker holds another's password or certificate.
set -eu
key="RINGTUNE_WORKER_PASSWORD_$(printf '%s' "$POD_NAME" | tr 'a-z' 'A-Z' | tr -c 'A-Z0-9' '_')"
cert="worker-$POD_NAME"
if [ ! -f "$WORKER_CREDENTIALS/$key" ]; then
  echo "no NATS user for worker $POD_NAME: the ringtune-nats-worker-credentials Secret has no $key" >&2
  echo "(more pods than NATS users: deploy/scripts/k8s-worker-users.sh makes more; see deploy/k8s/README.md)" >&2
  exit 1
fi
if [ ! -f "$WORKER_TLS/$cert.pem" ] || [ ! -f "$WORKER_TLS/$cert-key.pem" ]; then
  echo "no TLS certificate for worker $POD_NAME: the ringtune-nats-worker-tls Secret has no $cert.pem and $cert-key.pem" >&2
  echo "(deploy/scripts/k8s-worker-users.sh certs deploy/k8s/tls makes one per worker; see deploy/k8s/README.md)" >&2
  exit 1
fi
umask 077
for pair in "$WORKER_CREDENTIALS/$key:password" "$WORKER_TLS/$cert.pem:cert.pem" "$WORKER_TLS/$cert-key.pem:key.pem"; do
  cp "${pair%%:*}" "$IDENTITY_DIR/${pair##*:}.tmp"
  mv "$IDENTITY_DIR/${pair##*:}.tmp" "$IDENTITY_DIR/${pair##*:}"
done
