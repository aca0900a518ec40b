#!/usr/bin/env bash
# Installs the Debian packages ringtune needs, skipping those already present.
# Runs as root, or through sudo when it is available.
set -euo pipefail
# libopenblas-openmp-dev: the OpenMP build of OpenBLAS shares one thread pool with our own kernels,
# so BLAS threads and OpenMP threads never spin against each other on the same cores.
# golang-go and golang-github-nats-io-go-nats-dev: the tests build a job API client in Go (test/clients/go)
# to prove the job subjects work for a client that is not ringtune's.
# chromium: the dashboard's tests drive the system's browser headless (playwright-core downloads none);
# fonts-dejavu-core: the labels of loss.png (resvg draws text with the system's fonts).
# openssl: `make cluster-up TLS=1` makes its certificate authority and certificates with it.
# xz-utils and zstd: the GPU bundle's archive (deploy/gpu/bundle.sh: xz; its test and size check: zstd).
packages=(build-essential cmake pkg-config libopenblas-openmp-dev nats-server clang-format golang-go
  golang-github-nats-io-go-nats-dev chromium fonts-dejavu-core openssl xz-utils zstd)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A binary from another source (a nats-server release tarball, say) counts as present.
if command -v nats-server >/dev/null 2>&1; then
  missing=("${missing[@]/nats-server}")
fi
if command -v go >/dev/null 2>&1; then
  missing=("${missing[@]/golang-go}")
fi
want=()
for p in "${missing[@]}"; do [ -n "$p" ] && want+=("$p"); done
[ ${#want[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${want[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${want[@]}"
