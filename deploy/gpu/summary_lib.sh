# The summary of run_device_checks.sh and the checks it makes before running anything; sourced, and by its
# test with a fake step. Uses START (the run's start, epoch seconds), SUMMARY (the file) and sets `failed`.

# log LINE...: one line, stamped with the seconds since START, on stdout and appended to the summary at once
# (a run cut short still leaves every finished step's line).
log() { echo "[$(($(date +%s) - START))s] $*" | tee -a "$SUMMARY"; }

# step_result NAME RC FILE: the step's status line, and its FAIL lines, in the summary
step_result() {
  local name=$1 rc=$2 file=$3
  if [ "$rc" -eq 0 ]; then log "$name: ok"; else
    log "$name: FAILED (exit status $rc; $file)"
    failed=1
  fi
  grep -E '^FAIL|^RESULT|^CHECK' "$file" 2> /dev/null | head -40 | tee -a "$SUMMARY"
}

# cuda_runtime_needed HEADER: "13.0" from the probe's kCudaDriverNeeded (1000 * major + 10 * minor), so the
# script and `--device cuda` refuse the same drivers.
cuda_runtime_needed() {
  local v
  v=$(grep -o 'kCudaDriverNeeded = [0-9]*' "$1" | grep -o '[0-9]*$')
  echo "$((v / 1000)).$(((v % 1000) / 10))"
}

# version_at_least HAVE NEED: dotted versions, numerically ("12.10" is newer than "12.9")
version_at_least() {
  local have_major=${1%%.*} have_minor need_major=${2%%.*} need_minor
  have_minor=${1#*.}
  need_minor=${2#*.}
  [ "$have_minor" = "$1" ] && have_minor=0
  [ "$need_minor" = "$2" ] && need_minor=0
  have_minor=${have_minor%%.*}
  need_minor=${need_minor%%.*}
  [[ $have_major =~ ^[0-9]+$ && $have_minor =~ ^[0-9]+$ ]] || return 1
  ((have_major > need_major || (have_major == need_major && have_minor >= need_minor)))
}

# built_archs "80-real;86-real;89-real;90": "80 86 89 90" (a CMAKE_CUDA_ARCHITECTURES list, as the bundle
# records it in cuda_archs.txt)
built_archs() {
  echo "$1" | tr ';,' '\n\n' | grep -o '^[0-9]*' | sort -n | tr '\n' ' ' | sed 's/ $//'
}

# arch_supported CC ARCHS: CC as nvidia-smi prints it ("8.6"); machine code for sm_XY runs on sm_XZ with Z >= Y,
# and the newest arch's PTX on anything newer (the probe's rule, native/src/cuda_probe.cpp)
arch_supported() {
  local cc=$1 archs=$2 a newest=0 major minor
  major=${cc%%.*}
  minor=${cc#*.}
  [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] || return 1
  local v=$((major * 10 + minor))
  for a in $archs; do
    ((a > newest)) && newest=$a
    ((a / 10 == major && a % 10 <= minor)) && return 0
  done
  ((newest > 0 && v >= newest))
}

# unpack_bundle ARCHIVE DIR: the bundle's archive (deploy/gpu/bundle.sh) into DIR. A .tar.xz goes through xz, or
# through python3's lzma where the host has no xz tool (a GPU host's image may lack it); a .tar.zst through zstd.
unpack_bundle() {
  case $1 in
    *.tar.xz)
      if command -v xz > /dev/null 2>&1; then
        xz -dc -T0 "$1" | tar -C "$2" -xf -
      else
        python3 -c '
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    try:
        t.extractall(sys.argv[2], filter="tar")
    except TypeError:  # a python without extraction filters
        t.extractall(sys.argv[2])' "$1" "$2"
      fi
      ;;
    *.tar.zst) zstd -dcq "$1" | tar -C "$2" -xf - ;;
    *)
      echo "unpack_bundle: $1: neither .tar.xz nor .tar.zst" >&2
      return 1
      ;;
  esac
}
