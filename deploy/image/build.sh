#!/usr/bin/env bash
# make image: ringtune's image (deploy/docker/Dockerfile) and the test's nats-server image
# (deploy/docker/nats.Dockerfile), built by podman from a debootstrapped Debian root: nothing but Debian's and
# npm's registries is reached. Each image is tagged by a hash of its inputs (the base, its Dockerfile, the
# build context's files, RINGTUNE_MARCH) and rebuilt only when they change; the ringtune image is also tagged
# localhost/ringtune:latest. Prints the two image names, one a line: ringtune's, then nats'.
set -euo pipefail
cd "$(dirname "$0")/../.."
./deploy/image/install-podman.sh
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/podman/containers.conf}
RINGTUNE_MARCH=${RINGTUNE_MARCH:-x86-64-v3}
base=$(./deploy/image/rootfs.sh)

# The build context as the Dockerfile sees it: the files git knows (tracked or not ignored) outside the
# .dockerignore'd paths, each hashed with its name.
context_hash() {
  local ignored
  ignored=$(grep -v -e '^#' -e '^$' .dockerignore | sed 's/[.]/\\./g' | paste -sd'|')
  git ls-files -co --exclude-standard -z \
    | grep -zv -E "^(${ignored})(/|$)" | sort -z \
    | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s %s\n' "$(sha256sum <"$f" | cut -c1-64)" "$f"; done \
    | sha256sum | cut -c1-16
}

build() { # NAME DOCKERFILE KEY [podman build args...]
  local name=$1 file=$2 key=$3
  shift 3
  local image=localhost/$name:$key
  if ! podman image exists "$image"; then
    echo "building $image ($file)" >&2
    local start=$SECONDS
    podman build --quiet --pull=never --build-arg BASE="$base" -f "$file" -t "$image" "$@" . >&2 \
      || { echo "make image: building $image failed" >&2; exit 1; }
    echo "built $image in $((SECONDS - start)) s" >&2
  fi
  echo "$image"
}

ringtune_key=$( (echo "$base $RINGTUNE_MARCH"; cat deploy/docker/Dockerfile; context_hash) | sha256sum | cut -c1-16)
# The host's CA bundle for npm's registry (a proxy with its own CA, as the host itself trusts), as a build secret.
ca=${NPM_CA:-$(npm config get cafile 2>/dev/null || true)}
[ -n "$ca" ] && [ "$ca" != null ] && [ -f "$ca" ] || ca=/etc/ssl/certs/ca-certificates.crt
ringtune=$(build ringtune deploy/docker/Dockerfile "$ringtune_key" --build-arg RINGTUNE_MARCH="$RINGTUNE_MARCH" \
  --secret id=npm_ca,src="$ca")
podman tag "$ringtune" localhost/ringtune:latest
nats_key=$( (echo "$base"; cat deploy/docker/nats.Dockerfile) | sha256sum | cut -c1-16)
# an empty context: the nats image copies nothing in
nats=$(cd deploy/docker && build ringtune-nats nats.Dockerfile "$nats_key")
echo "$ringtune"
echo "$nats"
