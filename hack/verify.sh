#!/usr/bin/env bash
# Fails when generated files (deepcopy, CRDs, RBAC, the OLM bundle) or gofmt
# drift from the sources: regenerates into the tree and compares with what
# was there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GOTOOLCHAIN=local

unformatted=$(git ls-files -z --cached --others --exclude-standard '*.go' | grep -zv '^hack/controlplane/' | xargs -0 -r gofmt -s -l)
if [ -n "$unformatted" ]; then
  echo "gofmt -s needed on:" >&2
  echo "$unformatted" >&2
  exit 1
fi

generated() { find api -name 'zz_generated*.go'; find config/crd/bases config/rbac -name '*.yaml'; }
before=$(mktemp -d)
trap 'rm -rf "$before"' EXIT
generated | while read -r f; do mkdir -p "$before/$(dirname "$f")"; cp "$f" "$before/$f"; done

make --no-print-directory generate manifests >/dev/null

status=0
for f in $(generated); do
  if [ ! -f "$before/$f" ]; then
    echo "generated file $f was missing" >&2; status=1
  elif ! diff -u "$before/$f" "$f" >&2; then
    status=1
  fi
done
if [ "$status" -ne 0 ]; then
  echo "generated files were out of date with the markers: they are regenerated now; review and commit them" >&2
  exit 1
fi

# The OLM bundle (make bundle) is generated from config/ and committed.
mkdir -p "$before/bundle-was"
cp -r bundle "$before/bundle-was/bundle"
[ ! -f bundle.Dockerfile ] || cp bundle.Dockerfile "$before/bundle-was/"
if ! make --no-print-directory bundle >/dev/null; then
  echo "make bundle failed: the OLM bundle cannot be generated from config/" >&2
  exit 1
fi
mkdir -p "$before/bundle-now"
cp -r bundle bundle.Dockerfile "$before/bundle-now/"
if ! diff -ruN "$before/bundle-was" "$before/bundle-now" >&2; then
  echo "bundle/ or bundle.Dockerfile was out of date with config/: regenerated now by make bundle; review and commit them" >&2
  exit 1
fi
echo "verify: generated files, the OLM bundle and formatting are up to date"
