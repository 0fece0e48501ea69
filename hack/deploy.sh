#!/usr/bin/env bash
# Renders config/default for one operator image and namespace, through an
# overlay generated in a temporary directory, so the committed files are
# never edited:
#
#   hack/deploy.sh render    # print the manifests
#   hack/deploy.sh apply     # kubectl apply them
#   hack/deploy.sh delete    # kubectl delete them
#
# Environment: KUSTOMIZE (the pinned kustomize binary; required), IMG
# (image, default the one config/manager names), NAMESPACE (default
# wmco-system), KUBECTL (default kubectl), DRY_RUN (none, client or
# server; passed to kubectl as --dry-run), FORCE=1 lets delete go on while
# WindowsInstances exist.
set -euo pipefail

action=${1:?usage: hack/deploy.sh render|apply|delete}
root=$(cd "$(dirname "$0")/.." && pwd)
: "${KUSTOMIZE:?KUSTOMIZE must name the kustomize binary}"
NAMESPACE=${NAMESPACE:-wmco-system}
KUBECTL=${KUBECTL:-kubectl}
DRY_RUN=${DRY_RUN:-none}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- $(realpath --relative-to="$tmp" "$root/config/default")
YAML
(
	cd "$tmp"
	"$KUSTOMIZE" edit set namespace "$NAMESPACE"
	if [[ -n ${IMG:-} ]]; then
		# config/manager has already renamed the placeholder "controller".
		"$KUSTOMIZE" edit set image "ghcr.io/openwmco/wmco=$IMG"
	fi
)
"$KUSTOMIZE" build "$tmp" >"$tmp/install.yaml"

case $action in
render)
	cat "$tmp/install.yaml"
	;;
apply)
	"$KUBECTL" apply --dry-run="$DRY_RUN" -f "$tmp/install.yaml"
	;;
delete)
	# Deleting the CRDs deletes every WindowsInstance; with the operator
	# gone too, their finalizers would hold the CRDs and the hosts would
	# stay configured.
	if [[ ${FORCE:-} != 1 ]] && instances=$("$KUBECTL" get windowsinstances.wmco.io -o name 2>/dev/null) && [[ -n $instances ]]; then
		echo "WindowsInstances exist; delete them first so their hosts are deconfigured (or FORCE=1):" >&2
		echo "$instances" >&2
		exit 1
	fi
	"$KUBECTL" delete --ignore-not-found --dry-run="$DRY_RUN" -f "$tmp/install.yaml"
	;;
*)
	echo "unknown action $action" >&2
	exit 2
	;;
esac
