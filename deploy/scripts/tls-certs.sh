#!/usr/bin/env bash
# tls-certs.sh DIR [WORKER_ID...]: the TLS material of a cluster whose NATS connections leave the host, made
# with openssl, every key ECDSA P-256 (made in milliseconds where RSA takes most of a second: a Kubernetes
# cluster's one certificate per worker pod adds up):
#   ca.pem, ca-key.pem            a certificate authority of its own (the key never leaves DIR)
#   server.pem, server-key.pem    nats-server's certificate, for localhost, 127.0.0.1, ::1 and TLS_HOSTS
#   ROLE.pem, ROLE-key.pem        a client certificate per role: coordinator, worker, client, serve
#   worker-ID.pem, worker-ID-key.pem  one per WORKER_ID given: that worker's own certificate
# A client certificate names its NATS user (common name and DNS name), so a server with verify_and_map
# (cluster-up's TLS=1) lets it in only as that user: a role's password is no use without its certificate.
# Files already there are kept, so running it again changes nothing; keys are readable by this user only.
# Environment: TLS_HOSTS="nats.example.org 10.0.0.5" more names/addresses the server is reached by;
# TLS_DAYS=N validity (default 825).
set -euo pipefail
dir=${1:?usage: tls-certs.sh DIR}
command -v openssl >/dev/null 2>&1 || { echo "tls-certs: openssl is not installed: 'make deps' installs it" >&2; exit 1; }
days=${TLS_DAYS:-825}
umask 077
mkdir -p "$dir"

# openssl talks on stderr even when it succeeds: shown only when it fails.
quiet() {
  local out
  out=$("$@" 2>&1) || { echo "tls-certs: $1 failed:" >&2; echo "$out" >&2; exit 1; }
}
serial() { echo "0x$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"; }

if [ ! -f "$dir/ca.pem" ]; then
  quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days "$days" -subj "/CN=ringtune cluster CA" \
    -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
fi

# sign NAME SUBJECT_ALT_NAMES EXTENDED_KEY_USAGE
sign() {
  local name=$1 san=$2 usage=$3
  [ -f "$dir/$name.pem" ] && return 0
  quiet openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -subj "/CN=$name" -keyout "$dir/$name-key.pem" -out "$dir/$name.csr"
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n' \
    "$san" "$usage" >"$dir/$name.ext"
  quiet openssl x509 -req -sha256 -days "$days" -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
    -set_serial "$(serial)" -extfile "$dir/$name.ext" -out "$dir/$name.pem"
  rm -f "$dir/$name.csr" "$dir/$name.ext"
}

# Clients check the server's name against the subject alternative names (the common name is ignored).
names="DNS:localhost,IP:127.0.0.1,IP:::1"
for h in ${TLS_HOSTS:-}; do
  if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then names+=",IP:$h"; else names+=",DNS:$h"; fi
done
sign server "$names" serverAuth
for role in coordinator worker client serve; do sign "$role" "DNS:$role" clientAuth; done
shift
for id in "$@"; do
  [[ $id =~ ^[A-Za-z0-9-]+$ ]] || { echo "tls-certs: worker id '$id': letters, digits or '-' only (it is a DNS name)" >&2; exit 1; }
  sign "worker-$id" "DNS:worker-$id" clientAuth
done
echo "TLS material in $dir: ca.pem, server.pem, and client certificates for coordinator/worker/client/serve${1:+ and $# worker(s)}"
