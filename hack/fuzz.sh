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

failed=0
summary=""
while read -r dir name; do
  [ -n "$name" ] || continue
  grep -Eq -- "$match" <<<"$name" || continue
  log="$logdir/$name.log"
  echo "=== $name ./$dir ($fuzztime)"
  if "$go" test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "./$dir" >"$log" 2>&1; then
    result=ok
  else
    result=FAIL
    failed=$((failed + 1))
    cat "$log"
  fi
  execs=$(grep -Eo 'execs: [0-9]+' "$log" | tail -1 | awk '{print $2}' || true)
  line=$(printf '%-6s %-28s %-22s execs=%s' "$result" "$name" "./$dir" "${execs:-?}")
  echo "$line"
  summary+="$line"$'\n'
done <<<"$targets"

echo "--- fuzz summary ($fuzztime per target)"
printf '%s' "$summary"
if [ "$failed" -gt 0 ]; then
  echo "$failed fuzz target(s) failed; the failing inputs are under testdata/fuzz/ of their packages" >&2
  exit 1
fi
