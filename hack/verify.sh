#!/usr/bin/env bash
# Fails when generated files (deepcopy, CRDs, RBAC) or gofmt drift from the
# sources. Regenerates in place and compares with git.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GOTOOLCHAIN=local

unformatted=$(gofmt -s -l $(git ls-files '*.go' | grep -v '^hack/controlplane/') 2>&1 || true)
if [ -n "$unformatted" ]; then
  echo "gofmt -s needed on:" >&2
  echo "$unformatted" >&2
  exit 1
fi

make --no-print-directory generate manifests >/dev/null
drift=$(git status --porcelain -- api config bundle)
if [ -n "$drift" ]; then
  echo "generated files differ from the markers; run 'make generate manifests' and commit:" >&2
  echo "$drift" >&2
  git --no-pager diff --stat -- api config bundle >&2
  exit 1
fi
echo "verify: generated files and formatting are up to date"
