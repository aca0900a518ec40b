#!/usr/bin/env bash
# podman, buildah and debootstrap from Debian, for make image and the container tests (skipped when present).
set -euo pipefail
# iptables: netavark, podman's network stack, sets up container networks with it
packages=(podman buildah debootstrap runc netavark aardvark-dns uidmap iptables)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
