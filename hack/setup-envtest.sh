#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager,
# kubectl) from the Go module proxy into bin/k8s/<version>/ and skips the build
# when the binaries are already there.
#
#   K8S_VERSION   Kubernetes release to build (default v1.37.2)
#   ETCD_VERSION  etcd server release (default: the one that Kubernetes release pins)
#   APISERVER_REPORTED_VERSIONS
#                 space-separated Kubernetes versions (default "v1.36.9 v1.38.0")
#                 for which to build bin/k8s/<K8S_VERSION>/kube-apiserver-as-<version>:
#                 the same kube-apiserver linked to report <version> (on /version,
#                 and as its emulation version), for tests of a cluster whose
#                 version changes. Only the link step runs again (the compiled
#                 packages come from the Go build cache): about 10 s each.
#
# Prints the directory holding the binaries as its last line.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
K8S_VERSION=${K8S_VERSION:-v1.37.2}
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

BIN_DIR="$ROOT/bin/k8s/$K8S_VERSION"
WRAP_DIR="$ROOT/hack/controlplane/$K8S_VERSION"
BINARIES=(etcd kube-apiserver kube-controller-manager kubectl)
read -ra REPORTED_VERSIONS <<<"${APISERVER_REPORTED_VERSIONS-v1.36.9 v1.38.0}"
for v in "${REPORTED_VERSIONS[@]}"; do
  if ! [[ $v =~ ^v1\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]]; then
    echo "[setup-envtest] APISERVER_REPORTED_VERSIONS: $v is not a release such as v1.36.9" >&2
    exit 1
  fi
  BINARIES+=("kube-apiserver-as-$v")
done

log() { printf '[setup-envtest] %s\n' "$*" >&2; }

have_all() {
  for b in "${BINARIES[@]}"; do [ -x "$BIN_DIR/$b" ] || return 1; done
}

if have_all; then
  log "control plane $K8S_VERSION already built in ${BIN_DIR#"$ROOT"/}"
  echo "$BIN_DIR"
  exit 0
fi

mkdir -p "$BIN_DIR" "$WRAP_DIR/kubernetes" "$WRAP_DIR/etcd"

staging_version="v0.${K8S_VERSION#v1.}"

# Kubernetes' own go.mod replaces every k8s.io/<m> with ./staging/src/k8s.io/<m>;
# a module that depends on k8s.io/kubernetes must replace each with its
# published v0.Y.Z. sample-cli-plugin and sample-controller are not needed.
if [ ! -f "$WRAP_DIR/kubernetes/go.mod" ]; then
  log "writing wrapper module for k8s.io/kubernetes $K8S_VERSION"
  k8smod=$(cd "$WRAP_DIR/kubernetes" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module wmco.local/controlplane/kubernetes"
    echo
    echo "go $(sed -n 's/^go //p' "$k8smod")"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$k8smod" \
      | grep -v -e sample-cli-plugin -e sample-controller \
      | while read -r m; do echo "	$m => $m $staging_version"; done
    echo ")"
  } > "$WRAP_DIR/kubernetes/go.mod"
  (cd "$WRAP_DIR/kubernetes" && go get -tool \
      "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" \
      "k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION" \
      "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION")
fi

if [ -z "${ETCD_VERSION:-}" ]; then
  ETCD_VERSION=$(cd "$WRAP_DIR/kubernetes" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
fi

# go.etcd.io/etcd/server/v3's module root is etcd's main package, but its
# go.mod has replace directives, so `go install` refuses it; a wrapper that
# requires it as a tool builds it.
if [ ! -f "$WRAP_DIR/etcd/go.mod" ] || ! grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION" "$WRAP_DIR/etcd/go.mod"; then
  log "writing wrapper module for etcd $ETCD_VERSION"
  printf 'module wmco.local/controlplane/etcd\n\ngo 1.26\n' > "$WRAP_DIR/etcd/go.mod"
  (cd "$WRAP_DIR/etcd" && go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
fi

# ldflags_for VERSION: the flags that make a binary report VERSION.
ldflags_for() {
  local v=$1 m p flags="-s -w"
  m=${v#v1.}; m=${m%%.*}
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$m -X $p.gitTreeState=clean"
  done
  echo "$flags"
}
LDFLAGS=$(ldflags_for "$K8S_VERSION")

for b in kube-apiserver kube-controller-manager kubectl; do
  if [ ! -x "$BIN_DIR/$b" ]; then
    log "building $b $K8S_VERSION (cold: several minutes on 2 cores)"
    start=$(date +%s)
    (cd "$WRAP_DIR/kubernetes" && go build -trimpath -ldflags "$LDFLAGS" -o "$BIN_DIR/$b.tmp" "k8s.io/kubernetes/cmd/$b")
    mv "$BIN_DIR/$b.tmp" "$BIN_DIR/$b"
    log "built $b in $(( $(date +%s) - start ))s"
  fi
done

if [ ! -x "$BIN_DIR/etcd" ]; then
  log "building etcd $ETCD_VERSION"
  start=$(date +%s)
  (cd "$WRAP_DIR/etcd" && go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$BIN_DIR/etcd.tmp" "$BIN_DIR/etcd"
  log "built etcd in $(( $(date +%s) - start ))s"
fi

# The same kube-apiserver, relinked to report another version. The name
# holds both versions; a present file is never rebuilt, and a new one
# appears only complete (renamed from a private temporary name), as bin/k8s
# may be shared between clones.
for v in "${REPORTED_VERSIONS[@]}"; do
  out="$BIN_DIR/kube-apiserver-as-$v"
  if [ ! -x "$out" ]; then
    log "linking kube-apiserver $K8S_VERSION as $v"
    start=$(date +%s)
    (cd "$WRAP_DIR/kubernetes" && go build -trimpath -ldflags "$(ldflags_for "$v")" -o "$out.tmp.$$" k8s.io/kubernetes/cmd/kube-apiserver)
    mv "$out.tmp.$$" "$out"
    log "linked kube-apiserver-as-$v in $(( $(date +%s) - start ))s"
  fi
done

echo "$ETCD_VERSION" > "$BIN_DIR/etcd.version"
log "control plane $K8S_VERSION (etcd $ETCD_VERSION) ready in ${BIN_DIR#"$ROOT"/}"
echo "$BIN_DIR"
