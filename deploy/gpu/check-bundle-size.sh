#!/usr/bin/env bash
# The GPU bundle's size against what a GPU host's copy may carry: LIMIT_MIB (60; the copy of the working tree
# that reaches a lent GPU takes 64 MiB in all, the tree's own files included), and the bundle with the tree's
# copy (the files git tracks and the untracked ones it does not ignore) against COPY_LIMIT_MIB (64). Bytes are
# counted as the copy counts them: every file's length, symbolic links as links. What is carried is the
# compressed archive (deploy/gpu/bundle.sh: ringtune-gpu.tar.xz, unpacked on the GPU host) and cuda_archs.txt.
#   check-bundle-size.sh DIR        the bundle as packed (deploy/gpu/bundle.sh runs it on build/gpu-bundle)
#   check-bundle-size.sh --projected
#       `make test`, in seconds: where nvcc built make build's GPU code, bundle.sh stages build/native's outputs
#       (PACK_ONLY, COMPRESS=none: the same files, node and node_modules included) into a temporary folder,
#       and the carried size is projected from them: the staged tar through `zstd -3` (1.7 s of CPU where
#       xz -9 takes minutes, and xz -0 17 s), times XZ_OF_ZSTD3 percent (what xz -9 made of the same content
#       in the four-arch bundle: 35.3 MiB against 51.8 MiB, 68%, rounded up), plus the GPU code of every arch
#       the bundle adds (ARCHS): each packed binary's GPU code (its .nv_fatbin section: machine code and PTX
#       of make build's sm_90) grows by 0.85 of itself per added arch, machine code only (measured with CUDA
#       13.0: the four-arch binaries' sections were 3.43 times the sm_90 build's, 0.81 per added arch), and
#       that growth counts at 25% of its length (the four-arch GPU library's section went through zstd -3 to
#       17% of itself, through xz -9 to 12%); build/gpu-bundle, when `make gpu-bundle` made one, is measured
#       too.
set -uo pipefail
cd "$(dirname "$0")/../.."
LIMIT_MIB=${LIMIT_MIB:-60}
ARCHS=${ARCHS:-80-real;86-real;89-real;90}
XZ_OF_ZSTD3=${XZ_OF_ZSTD3:-70}
limit=$((LIMIT_MIB * 1024 * 1024))
COPY_LIMIT_MIB=${COPY_LIMIT_MIB:-64}
copy_limit=$((COPY_LIMIT_MIB * 1024 * 1024))

# bytes DIR: the length of every file and link under DIR
bytes() { find "$1" \( -type f -o -type l \) -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
# fatbin FILE: the bytes of its GPU code section (0 without one)
fatbin() { size -A "$1" 2> /dev/null | awk '$1 == ".nv_fatbin" {print $2; found = 1} END {if (!found) print 0}'; }
# arch_count "80-real;86-real;89-real;90": 4
arch_count() { echo "$1" | tr ';, ' '\n\n\n' | grep -c '^[0-9]'; }

verdict() { # verdict WHAT BYTES
  if (($2 > limit)); then
    echo "bundle size: FAILED: $1 is $(mib "$2") MiB, over the $LIMIT_MIB MiB a GPU host's copy may carry"
    return 1
  fi
  echo "bundle size: $1 is $(mib "$2") MiB (limit $LIMIT_MIB MiB)"
}

# tree_bytes: the working tree as the copy to a GPU host takes it (tracked, and untracked but not ignored)
tree_bytes() { git ls-files -z -co --exclude-standard | xargs -0 -r stat -c %s 2> /dev/null | awk '{s += $1} END {print s + 0}'; }
with_tree() { # with_tree WHAT BYTES: the bundle and the tree together against the copy's limit
  local tree all
  tree=$(tree_bytes)
  all=$(($2 + tree))
  if ((all > copy_limit)); then
    echo "bundle size: FAILED: $1 ($(mib "$2") MiB) with the working tree ($(mib "$tree") MiB) is $(mib "$all") MiB," \
      "over the $COPY_LIMIT_MIB MiB the copy to a GPU host takes"
    return 1
  fi
  echo "bundle size: $1 with the working tree ($(mib "$tree") MiB): $(mib "$all") MiB (limit $COPY_LIMIT_MIB MiB)"
}

largest() { # the biggest files, for the reader of a failure
  find "$1" -type f -printf '%s %P\n' | sort -rn | head -6 | awk '{printf "  %6.1f MiB  %s\n", $1 / 1048576, $2}'
}

if [ "${1:-}" != --projected ]; then
  dir=${1:?usage: check-bundle-size.sh DIR | --projected}
  [ -d "$dir" ] || {
    echo "bundle size: FAILED: $dir is not a folder"
    exit 1
  }
  total=$(bytes "$dir")
  largest "$dir"
  if [ -f "$dir/ringtune-gpu.tar.xz" ]; then
    echo "  unpacked: $(mib "$(xz --robot -l "$dir/ringtune-gpu.tar.xz" | awk '$1 == "totals" {print $5}')") MiB"
  fi
  status=0
  verdict "$dir" "$total" || status=1
  with_tree "$dir" "$total" || status=1
  exit "$status"
fi

BUILD=${BUILD:-build/native}
if [ ! -f "$BUILD/ringtune_cuda_device.so" ] || [ ! -f "$BUILD/cuda_archs.txt" ]; then
  echo "bundle size: skipped (no nvcc at build time: $BUILD has no GPU library to pack)"
  exit 0
fi
T=$(mktemp -d /tmp/ringtune-bundle-size.XXXXXX)
trap 'rm -rf "$T"' EXIT
if ! PACK_ONLY=1 COMPRESS=none BUILD="$BUILD" B="$T/bundle" deploy/gpu/bundle.sh > "$T/pack.txt" 2>&1; then
  echo "bundle size: FAILED: bundle.sh could not pack $BUILD:"
  cat "$T/pack.txt"
  exit 1
fi
S=$T/bundle/staged
built=$(cat "$BUILD/cuda_archs.txt")
added=$(($(arch_count "$ARCHS") - $(arch_count "$built")))
((added < 0)) && added=0
staged=$(bytes "$S")
zstd3=$(tar -C "$S" -cf - . | zstd -q -3 -T0 | wc -c)
gpu_code=0
for f in "$S"/ringtune_*; do gpu_code=$((gpu_code + $(fatbin "$f"))); done
projected=$((zstd3 * XZ_OF_ZSTD3 / 100 + added * gpu_code * 85 / 100 * 25 / 100))
echo "bundle size: make build's outputs staged: $(mib "$staged") MiB, through zstd -3 $(mib "$zstd3") MiB; GPU code" \
  "$(mib "$gpu_code") MiB for $built; projected carried size for $ARCHS ($XZ_OF_ZSTD3% of the zstd -3 size," \
  "+$added x 0.85 x 25% of the GPU code): $(mib "$projected") MiB"
largest "$S"
status=0
verdict "the projected bundle" "$projected" || status=1
with_tree "the projected bundle" "$projected" || status=1
if [ -d build/gpu-bundle ]; then
  verdict build/gpu-bundle "$(bytes build/gpu-bundle)" || status=1
  with_tree build/gpu-bundle "$(bytes build/gpu-bundle)" || status=1
fi
exit "$status"
