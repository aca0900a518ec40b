#!/usr/bin/env bash
# make test-js: every dist/test/**/*.test.js (the container tests apart) in the lanes test/lanes.txt gives
# them. The "wait" and "cpu" lanes run side by side, each one file at a time: a file that mostly waits on
# processes, thresholds and timeouts shares the 2 cores of a small machine with one that computes, so
# neither lane waits for the other. Then the "solo" files run one at a time with nothing beside them: those
# that assert an upper bound on wall-clock time, or that look at the whole repository or machine, and every
# file test/lanes.txt does not name (a new test runs alone until someone places it).
# The wait lane's TAP is printed as it runs, the cpu lane's once both lanes are done, then the solo files'.
# Exits 1 when any lane failed, after all three ran. Extra arguments go to every `node --test`;
# `--list` prints each file's lane ("LANE dist/test/...") and runs nothing.
# TEST_LANES names another lanes file (the test of this script plants broken ones); TEST_ONLY, an
# extended regular expression, runs only the files whose path matches it (each still in its lane);
# TEST_JS_SERIAL=1 runs every file one at a time in one `node --test`, as before the lanes.
set -uo pipefail
cd "$(dirname "$0")/../.."
LANES=${TEST_LANES:-test/lanes.txt}

# The lane of test/X.test.ts (dist/test/X.test.js): the first line of LANES whose pattern matches X.
lane_of() {
  local rel=$1 lane pattern
  while read -r lane pattern _; do
    [[ -z $lane || $lane == \#* ]] && continue
    # shellcheck disable=SC2053 # the pattern is a glob on purpose
    if [[ $rel == $pattern ]]; then
      echo "$lane"
      return
    fi
  done < "$LANES"
  echo solo
}

wait_files=()
cpu_files=()
solo_files=()
while read -r file; do
  rel=${file#dist/test/}
  rel=${rel%.test.js}
  lane=$(lane_of "$rel")
  [ "${1:-}" = --list ] && echo "$lane $file"
  case $lane in
    wait) wait_files+=("$file") ;;
    cpu) cpu_files+=("$file") ;;
    solo) solo_files+=("$file") ;;
    *)
      echo "$LANES: the lane of $rel is '$lane', not wait, cpu or solo" >&2
      exit 1
      ;;
  esac
done < <(find dist/test -name '*.test.js' -not -path 'dist/test/containers/*' | grep -E -- "${TEST_ONLY:-.}" | sort)
[ "${1:-}" = --list ] && exit 0

if [ "${TEST_JS_SERIAL:-0}" = 1 ]; then
  mapfile -t all < <(printf '%s\n' "${wait_files[@]}" "${cpu_files[@]}" "${solo_files[@]}" | grep . | sort)
  exec node --test --test-concurrency=1 "$@" "${all[@]}"
fi

echo "# JS tests: ${#wait_files[@]} files in the wait lane beside ${#cpu_files[@]} in the cpu lane, then ${#solo_files[@]} alone"
status=0
cpu_log=$(mktemp)
trap 'rm -f "$cpu_log"' EXIT
cpu_pid=
if [ ${#cpu_files[@]} -gt 0 ]; then
  node --test --test-concurrency=1 "$@" "${cpu_files[@]}" > "$cpu_log" 2>&1 &
  cpu_pid=$!
fi
if [ ${#wait_files[@]} -gt 0 ]; then
  node --test --test-concurrency=1 "$@" "${wait_files[@]}" || status=1
fi
if [ -n "$cpu_pid" ]; then
  wait "$cpu_pid" || status=1
  echo "# the cpu lane (run beside the wait lane):"
  cat "$cpu_log"
fi
if [ ${#solo_files[@]} -gt 0 ]; then
  echo "# the solo files, one at a time:"
  node --test --test-concurrency=1 "$@" "${solo_files[@]}" || status=1
fi
exit $status
