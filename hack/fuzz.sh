#!/usr/bin/env bash
# Runs every fuzz target of the module (func FuzzX in a _test.go file) for
# FUZZTIME each, one after the other: go test -fuzz takes a single target
# per run. Prints executions per target and fails if any target fails; a
# failing input is kept under the package's testdata/fuzz/FuzzX/, where
# plain go test then replays it as a regression case.
#
# Usage: hack/fuzz.sh [FUZZTIME] (default 10m; e.g. 10s for CI)
# FUZZ_MATCH (an extended regular expression) runs only the targets whose
# name it matches, so that a long run can be split over several sittings:
#   FUZZ_MATCH='^Fuzz(Parse|Decode)' hack/fuzz.sh 10m
# FUZZ_JOBS (default 1) runs that many targets at once, each with an equal
# share of the CPUs as fuzzing workers (go test -parallel): the 33 targets
# at 10m each take 5.5 h one after the other, 1.4 h four at a time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime=${1:-10m}
match=${FUZZ_MATCH:-.}
go=${GO:-go}
logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT

# package directory and target name, one pair a line, sorted
targets=$(grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' --exclude-dir=bin --exclude-dir=hack . |
  sed -E 's|^\./(.*)/[^/]*:func (Fuzz[A-Za-z0-9_]*)\($|\1 \2|' | sort -u)

jobs=${FUZZ_JOBS:-1}
case $jobs in '' | *[!0-9]* | 0) echo "FUZZ_JOBS must be a positive integer, got '$jobs'" >&2; exit 2 ;; esac
workers=$(( $(nproc) / jobs ))
[ "$workers" -ge 1 ] || workers=1

# fuzz runs one target and writes its summary line beside its log.
fuzz() {
  local dir=$1 name=$2 result execs
  # two packages may have targets of the same name
  local log="$logdir/${dir//\//_}.$name.log"
  echo "=== $name ./$dir ($fuzztime)"
  local note=""
  if "$go" test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" -parallel="$workers" "./$dir" >"$log" 2>&1; then
    result=ok
  else
    result=FAIL
    cat "$log"
  fi
  execs=$(grep -Eo 'execs: [0-9]+' "$log" | tail -1 | awk '{print $2}' || true)
  if [ "$result" = FAIL ] && coordinator_deadline "$log" "$name" "${execs:-0}"; then
    # Go before 1.27 can end a fuzzing run that found nothing with a bare
    # "context deadline exceeded" when -fuzztime expires while a worker is
    # busy (golang/go#75804). It counts as a pass only when inputs did run,
    # no failing input was written, and the seed corpus and testdata/fuzz
    # replay cleanly.
    if "$go" test -count=1 -run="^${name}\$" "./$dir" >>"$log" 2>&1; then
      result=ok
      note=" (fuzzing ended by Go's end-of-fuzztime race, golang/go#75804; corpus replayed clean)"
    fi
  fi
  printf '%-6s %-28s %-22s execs=%s%s\n' "$result" "$name" "./$dir" "${execs:-?}" "$note" | tee "${log%.log}.result"
}

# coordinator_deadline says whether a failed run's only failure is the
# fuzzing coordinator's deadline after inputs had run: the target's FAIL
# line followed by nothing but "context deadline exceeded", and no failing
# input written.
coordinator_deadline() {
  local log=$1 name=$2 execs=$3
  [ "$execs" -gt 0 ] || return 1
  grep -q 'Failing input written' "$log" && return 1
  [ "$(grep -c -- '--- FAIL' "$log")" -eq 1 ] || return 1
  grep -A1 -- "^--- FAIL: ${name} (" "$log" | tail -1 | grep -Eq '^[[:space:]]+context deadline exceeded$'
}

running=0
while read -r dir name; do
  [ -n "$name" ] || continue
  grep -Eq -- "$match" <<<"$name" || continue
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  fuzz "$dir" "$name" &
  running=$((running + 1))
done <<<"$targets"
wait

summary=$(cat "$logdir"/*.result 2>/dev/null | sort -k2 || true)
failed=$(grep -c '^FAIL' <<<"$summary" || true)
echo "--- fuzz summary ($fuzztime per target)"
printf '%s\n' "$summary"
if [ "$failed" -gt 0 ]; then
  echo "$failed fuzz target(s) failed; the failing inputs are under testdata/fuzz/ of their packages" >&2
  exit 1
fi
