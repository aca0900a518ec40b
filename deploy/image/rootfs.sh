#!/usr/bin/env bash
# A minimal Debian root filesystem made with debootstrap from Debian's own archive, imported into podman as
# the image the Dockerfiles start FROM (where Docker Hub is reachable, debian:trixie-slim is the same thing).
# Prints the image's name. The root is content-keyed: its tarball under .cache/image/ and the image's tag are
# named by a hash of what makes it (suite, mirror, packages, this script), so it is made once and reused.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/podman/containers.conf}
SUITE=${DEBIAN_SUITE:-trixie}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# ca-certificates: npm's registry over HTTPS in the image builds
INCLUDE=ca-certificates
key=$( (echo "$SUITE $MIRROR $INCLUDE"; cat "$0") | sha256sum | cut -c1-16)
image=localhost/ringtune-rootfs:$key
if podman image exists "$image"; then echo "$image"; exit 0; fi
cache=.cache/image/rootfs-$key.tar
if [ ! -f "$cache" ]; then
  mkdir -p .cache/image
  root=$(mktemp -d .cache/image/rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap $SUITE (minbase) from $MIRROR" >&2
  debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$root" "$MIRROR" >&2
  # apt inside the image builds reads the same archive; no package lists or caches are kept
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  tar --numeric-owner -C "$root" -cf "$cache.part" .
  mv "$cache.part" "$cache"
fi
podman import --quiet "$cache" "$image" >/dev/null
echo "$image"
