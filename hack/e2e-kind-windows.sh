#!/usr/bin/env bash
# Runs the e2e suite (test/e2e, byoh provider) on a kind cluster whose
# Windows nodes are VMs you supply, networked by flannel (VXLAN, VNI 4096,
# UDP 4789):
#
#   1. renders hack/kind/cluster.yaml with the API server address the VMs
#      reach, checked against kube-flannel's net-conf.json (go run -C
#      hack/kind .), and creates the cluster on a Docker network of its own;
#   2. installs the CNI bridge plugin kube-flannel delegates to (kind's node
#      image has none; built from the pinned Go module) and kube-flannel
#      (hack/kind/kube-flannel: flannel's manifest, VNI 4096, port 4789);
#   3. routes the VMs to the kind nodes' network through this machine (a
#      persistent route on each VM over SSH, and iptables rules here, so
#      VXLAN packets are neither dropped by Docker nor masqueraded);
#   4. builds the operator image (make image) and loads it into kind,
#      deploys it (make deploy) with --api-server-url set to the address
#      the VMs use, and creates the SSH key Secret and the WindowsNodeConfig
#      (network type Flannel);
#   5. runs go test -tags e2e ./test/e2e/... with WMCO_E2E_PROVIDER=byoh,
#      the metrics spec through a port-forward;
#   6. collects logs into $WORK_DIR/logs and, unless --keep, deconfigures
#      what is left on the VMs, removes the routes and deletes the cluster.
#
# Usage: hack/e2e-kind-windows.sh [--keep]   (or make e2e-kind-windows)
#        hack/e2e-kind-windows.sh --down     (remove what a --keep run left)
#
# Required environment:
#   WINDOWS_HOSTS   at least two Windows VMs, address[:port] comma-separated
#                   (IPv4 or DNS names) with OpenSSH and key authentication
#                   for an administrator (README "Windows hosts")
#   SSH_KEY         path of the unencrypted private key they accept
# Optional:
#   WINDOWS_USER             SSH user (default Administrator)
#   KIND_API_SERVER_ADDRESS  this machine's IPv4 address that the VMs reach
#                            (default: the source address of the route to
#                            the first VM)
#   KIND_API_SERVER_PORT     default 6443
#   CLUSTER_NAME             kind cluster (default wmco-e2e)
#   KIND_DOCKER_NETWORK      Docker network of the kind nodes (default
#                            wmco-kind), KIND_DOCKER_SUBNET its IPv4 subnet
#                            when created (default 172.31.250.0/24)
#   SKIP_ROUTES=1            the VMs already reach that subnet; change no
#                            routes or iptables rules
#   IMG                      operator image (default
#                            localhost/openwmco/wmco:e2e-<commit>);
#                            SKIP_IMAGE_BUILD=1 loads an existing one
#   NAMESPACE                operator namespace (default wmco-system)
#   E2E_TIMEOUT              go test -timeout (default 3h); E2E_ARGS extra
#                            go test arguments (e.g. -ginkgo.focus=create)
#   METRICS_PORT             local port of the metrics port-forward (18443)
#   WORK_DIR                 kubeconfig, rendered config, logs (default
#                            _output/e2e-kind-windows)
#   KIND, KUSTOMIZE, KUBECTL, DOCKER, GO, MAKE, K8S_VERSION: the tools (make
#   e2e-kind-windows passes the pinned kind and kustomize) and the payload's
#   Kubernetes version (the Makefile's).
set -euo pipefail
# A cancelled run (SIGTERM, Ctrl-C) still cleans up: the EXIT trap runs.
trap 'exit 130' INT
trap 'exit 143' TERM

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

die() {
	echo "e2e-kind-windows: $*" >&2
	exit 1
}
log() { printf '==> %s\n' "$*" >&2; }

action=run
keep=0
for arg in "$@"; do
	case $arg in
	--keep) keep=1 ;;
	--down) action=down ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument $arg (want --keep, --down or --help)" ;;
	esac
done

GO=${GO:-go}
MAKE=${MAKE:-make}
DOCKER=${DOCKER:-docker}
K8S_VERSION=${K8S_VERSION:-$(sed -n 's/^K8S_VERSION ?= //p' Makefile)}
CLUSTER_NAME=${CLUSTER_NAME:-wmco-e2e}
NAMESPACE=${NAMESPACE:-wmco-system}
WINDOWS_USER=${WINDOWS_USER:-Administrator}
KIND_API_SERVER_PORT=${KIND_API_SERVER_PORT:-6443}
KIND_DOCKER_NETWORK=${KIND_DOCKER_NETWORK:-wmco-kind}
KIND_DOCKER_SUBNET=${KIND_DOCKER_SUBNET:-172.31.250.0/24}
E2E_TIMEOUT=${E2E_TIMEOUT:-3h}
METRICS_PORT=${METRICS_PORT:-18443}
WORK_DIR=${WORK_DIR:-$root/_output/e2e-kind-windows}
mkdir -p "$WORK_DIR/logs"
WORK_DIR=$(cd "$WORK_DIR" && pwd)
export KUBECONFIG=$WORK_DIR/kubeconfig
route_comment=wmco-e2e-kind-windows

# need NAME HINT: fail unless the command NAME exists.
need() {
	command -v "$1" >/dev/null || die "$1 is not installed or not on PATH: $2"
}

# tool VAR NAME HINT: the command VAR names, else NAME on PATH.
tool() {
	local var=$1 name=$2 hint=$3
	if [[ -n ${!var:-} ]]; then
		[[ -x ${!var} ]] || command -v "${!var}" >/dev/null || die "$var=${!var} is not an executable"
		return
	fi
	need "$name" "$hint"
	printf -v "$var" '%s' "$name"
}

tool KIND kind "make e2e-kind-windows builds the pinned kind into bin/, or: go build -C hack/kind -o bin/kind sigs.k8s.io/kind"
if [[ -z ${KUBECTL:-} ]] && ! command -v kubectl >/dev/null && [[ -x bin/k8s/$K8S_VERSION/kubectl ]]; then
	KUBECTL=$root/bin/k8s/$K8S_VERSION/kubectl
fi
tool KUBECTL kubectl "install kubectl $K8S_VERSION (https://kubernetes.io/docs/tasks/tools/), or make setup-envtest builds one into bin/k8s/"
export KUBECTL
need "$DOCKER" "kind runs the cluster's nodes as Docker containers (https://docs.docker.com/engine/install/)"
need ssh "the routes and the host checks go over SSH (openssh-client)"

# --- the Windows hosts ---------------------------------------------------

# hosts holds "address port" pairs of WINDOWS_HOSTS.
hosts=()
parse_hosts() {
	[[ -n ${WINDOWS_HOSTS:-} ]] || die "WINDOWS_HOSTS is not set: at least two Windows VMs, address[:port] comma-separated (e.g. 10.0.0.21,10.0.0.22)"
	local item addr port
	IFS=, read -ra items <<<"$WINDOWS_HOSTS"
	for item in "${items[@]}"; do
		item=${item//[[:space:]]/}
		[[ -n $item ]] || continue
		addr=${item%%:*}
		port=22
		[[ $item == *:* ]] && port=${item#*:}
		if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
			die "WINDOWS_HOSTS: bad port in $item (IPv6 addresses cannot be listed)"
		fi
		[[ $addr =~ ^[A-Za-z0-9.-]+$ ]] || die "WINDOWS_HOSTS: $item is not an IPv4 address or DNS name"
		hosts+=("$addr $port")
	done
	((${#hosts[@]} >= 2)) || die "WINDOWS_HOSTS names ${#hosts[@]} host(s); the e2e suite needs at least 2"
}

# ipv4_of NAME: the IPv4 address of NAME (itself when it is one).
ipv4_of() {
	if [[ $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
		echo "$1"
	else
		getent ahostsv4 "$1" | awk 'NR == 1 { print $1 }'
	fi
}

ssh_opts=()
# on_host ADDR PORT ARGV...: run a fixed command on a Windows host.
on_host() {
	local addr=$1 port=$2
	shift 2
	ssh "${ssh_opts[@]}" -p "$port" "$WINDOWS_USER@$addr" "$@"
}

# check_hosts [--lenient]: the key is readable and every host runs a
# command over SSH; --lenient (for --down) only warns about a host.
check_hosts() {
	[[ -n ${SSH_KEY:-} ]] || die "SSH_KEY is not set: the path of the private key the Windows VMs accept"
	[[ -r $SSH_KEY ]] || die "SSH_KEY=$SSH_KEY cannot be read"
	# The suite runs in test/e2e: a relative path would not be found there.
	SSH_KEY=$(realpath "$SSH_KEY")
	ssh_opts=(-i "$SSH_KEY" -o BatchMode=yes -o IdentitiesOnly=yes -o ConnectTimeout=20
		-o StrictHostKeyChecking=accept-new -o "UserKnownHostsFile=$WORK_DIR/known_hosts")
	local h addr port reachable=()
	for h in "${hosts[@]}"; do
		read -r addr port <<<"$h"
		log "Checking SSH to $WINDOWS_USER@$addr:$port"
		if on_host "$addr" "$port" cmd.exe /c ver >"$WORK_DIR/logs/ver-$addr.txt" 2>&1; then
			reachable+=("$h")
		elif [[ ${1:-} == --lenient ]]; then
			echo "e2e-kind-windows: $addr:$port cannot be reached over SSH; its route to the kind network stays" >&2
		else
			die "cannot run a command on $addr:$port as $WINDOWS_USER with $SSH_KEY (see $WORK_DIR/logs/ver-$addr.txt); README \"Windows hosts\" lists what a host needs"
		fi
	done
	hosts=("${reachable[@]}")
}

# --- the kind node network ---------------------------------------------

# kind_subnet prints the IPv4 subnet of KIND_DOCKER_NETWORK.
kind_subnet() {
	"$DOCKER" network inspect -f '{{range .IPAM.Config}}{{println .Subnet}}{{end}}' "$KIND_DOCKER_NETWORK" |
		awk '/^[0-9.]+\/[0-9]+$/ && !found { print; found = 1 } END { exit !found }'
}

ensure_network() {
	if "$DOCKER" network inspect "$KIND_DOCKER_NETWORK" >/dev/null 2>&1; then
		log "Using Docker network $KIND_DOCKER_NETWORK ($(kind_subnet))"
		return
	fi
	local opts=(-d bridge --subnet "$KIND_DOCKER_SUBNET" -o com.docker.network.bridge.enable_ip_masquerade=true)
	local major
	major=$("$DOCKER" version --format '{{.Server.Version}}')
	major=${major%%.*}
	# Docker 28 drops packets routed to a container from outside unless
	# the network says otherwise; the Windows VMs send VXLAN to the nodes.
	if [[ $major =~ ^[0-9]+$ ]] && ((major >= 28)); then
		opts+=(-o com.docker.network.bridge.gateway_mode_ipv4=nat-unprotected)
	fi
	log "Creating Docker network $KIND_DOCKER_NETWORK ($KIND_DOCKER_SUBNET)"
	"$DOCKER" network create "${opts[@]}" --label "$route_comment=1" "$KIND_DOCKER_NETWORK" >/dev/null
}

# cidr_mask PREFIXLEN: the dotted netmask.
cidr_mask() {
	local bits=$1 mask="" octet
	for _ in 1 2 3 4; do
		if ((bits >= 8)); then
			octet=255
			bits=$((bits - 8))
		else
			octet=$((256 - (1 << (8 - bits))))
			((bits == 0)) && octet=0
			bits=0
		fi
		mask+=${mask:+.}$octet
	done
	echo "$mask"
}

sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)

# iptables_rules add|del SUBNET HOSTIP: forward the host's packets to the
# kind nodes, and leave the nodes' packets to the host unmasqueraded, so
# both ends of the VXLAN tunnel see each other's real address.
iptables_rules() {
	local op=$1 subnet=$2 ip=$3 flag
	[[ $op == add ]] && flag=-I || flag=-D
	"${sudo_cmd[@]}" iptables "$flag" DOCKER-USER -s "$ip" -d "$subnet" -m comment --comment "$route_comment" -j ACCEPT
	"${sudo_cmd[@]}" iptables "$flag" DOCKER-USER -s "$subnet" -d "$ip" -m comment --comment "$route_comment" -j ACCEPT
	"${sudo_cmd[@]}" iptables -t nat "$flag" POSTROUTING -s "$subnet" -d "$ip" -m comment --comment "$route_comment" -j RETURN
}

add_routes() {
	local subnet=$1 via=$2 h addr port ip
	need iptables "the VMs' packets to the kind nodes are forwarded by this machine (iptables package), or set SKIP_ROUTES=1"
	for h in "${hosts[@]}"; do
		read -r addr port <<<"$h"
		ip=$(ipv4_of "$addr")
		[[ -n $ip ]] || die "cannot resolve $addr to an IPv4 address"
		log "Routing $addr to $subnet through $via"
		routes_added=1
		iptables_rules add "$subnet" "$ip"
		# A persistent route, as the suite reboots the hosts; a rerun
		# replaces the one it left.
		on_host "$addr" "$port" route.exe delete "${subnet%/*}" >>"$WORK_DIR/logs/routes.log" 2>&1 || true
		on_host "$addr" "$port" route.exe -p add "${subnet%/*}" mask "$(cidr_mask "${subnet#*/}")" "$via" >>"$WORK_DIR/logs/routes.log" 2>&1 ||
			die "route.exe add on $addr failed (see $WORK_DIR/logs/routes.log)"
	done
}

remove_routes() {
	local subnet=$1 h addr port ip
	for h in "${hosts[@]}"; do
		read -r addr port <<<"$h"
		log "Removing the route to $subnet from $addr"
		on_host "$addr" "$port" route.exe delete "${subnet%/*}" >>"$WORK_DIR/logs/routes.log" 2>&1 || true
		ip=$(ipv4_of "$addr")
		if [[ -n $ip ]]; then
			iptables_rules del "$subnet" "$ip" 2>/dev/null || true
		fi
	done
}

# --- clean-up ------------------------------------------------------------

pf_pid=""
subnet=""
# routes_added: whether down removes the VMs' routes and the iptables
# rules (always for --down, which cannot know).
routes_added=0

collect_logs() {
	log "Collecting logs into $WORK_DIR/logs"
	local l=$WORK_DIR/logs
	"$KUBECTL" get nodes -o wide >"$l/nodes.txt" 2>&1 || true
	"$KUBECTL" get windowsinstances -o yaml >"$l/windowsinstances.yaml" 2>&1 || true
	"$KUBECTL" get windowsnodeconfigs -o yaml >"$l/windowsnodeconfigs.yaml" 2>&1 || true
	"$KUBECTL" get events -A --sort-by=.lastTimestamp >"$l/events.txt" 2>&1 || true
	"$KUBECTL" -n "$NAMESPACE" logs deploy/wmco --all-containers >"$l/wmco.log" 2>&1 || true
	"$KUBECTL" -n kube-flannel logs ds/kube-flannel-ds --all-containers --prefix >"$l/kube-flannel.log" 2>&1 || true
	"$KIND" export logs "$l/kind" --name "$CLUSTER_NAME" >/dev/null 2>&1 || true
}

# deconfigure lets the operator clean the hosts the suite left configured
# (after a failure) before the cluster goes.
deconfigure() {
	"$KUBECTL" get crd windowsinstances.wmco.io >/dev/null 2>&1 || return 0
	log "Deleting what is left of the suite's hosts (the operator deconfigures them)"
	"$KUBECTL" -n "$NAMESPACE" delete configmap windows-instances --ignore-not-found || true
	"$KUBECTL" delete windowsinstances --all --wait --timeout=20m ||
		echo "e2e-kind-windows: WindowsInstances were not deconfigured within 20m; the VMs may keep the node software (C:\\k)" >&2
}

down() {
	if [[ -n $pf_pid ]]; then
		kill "$pf_pid" 2>/dev/null || true
		pf_pid=""
	fi
	if "$KIND" get clusters 2>/dev/null | grep -x "$CLUSTER_NAME" >/dev/null; then
		deconfigure
		log "Deleting kind cluster $CLUSTER_NAME"
		"$KIND" delete cluster --name "$CLUSTER_NAME"
	fi
	[[ -n $subnet ]] || subnet=$(kind_subnet 2>/dev/null || true)
	if ((routes_added)) && [[ ${SKIP_ROUTES:-} != 1 && -n $subnet && ${#hosts[@]} -gt 0 ]]; then
		remove_routes "$subnet"
	fi
	if [[ $("$DOCKER" network inspect -f "{{index .Labels \"$route_comment\"}}" "$KIND_DOCKER_NETWORK" 2>/dev/null || true) == 1 ]]; then
		log "Removing Docker network $KIND_DOCKER_NETWORK"
		"$DOCKER" network rm "$KIND_DOCKER_NETWORK" >/dev/null || true
	fi
	rm -f "$KUBECONFIG"
}

on_exit() {
	local status=$?
	trap - EXIT
	if [[ -s $KUBECONFIG ]]; then
		collect_logs
	fi
	if ((keep)); then
		if [[ -n $pf_pid ]]; then
			kill "$pf_pid" 2>/dev/null || true
		fi
		log "Kept: KUBECONFIG=$KUBECONFIG; remove it with: WINDOWS_HOSTS=$WINDOWS_HOSTS SSH_KEY=$SSH_KEY $0 --down"
	else
		down
	fi
	exit "$status"
}

if [[ $action == down ]]; then
	routes_added=1
	if [[ -n ${WINDOWS_HOSTS:-} ]]; then
		parse_hosts
		check_hosts --lenient
	else
		echo "e2e-kind-windows: WINDOWS_HOSTS is not set: the VMs keep their route to the kind network" >&2
	fi
	down
	exit 0
fi

# --- run -----------------------------------------------------------------

tool KUSTOMIZE kustomize "make e2e-kind-windows builds the pinned kustomize into bin/ (make kustomize)"
need "$GO" "Go builds the CNI bridge plugin and runs the e2e suite"
need "$MAKE" "the image and the install are make targets"
need git "the image is tagged with the commit"

parse_hosts
check_hosts
"$DOCKER" info >/dev/null 2>&1 || die "$DOCKER cannot reach its daemon (is Docker running, may this user use it?)"
if "$KIND" get clusters 2>/dev/null | grep -x "$CLUSTER_NAME" >/dev/null; then
	die "kind cluster $CLUSTER_NAME exists: remove it with $0 --down, or set CLUSTER_NAME"
fi

first_ip=$(ipv4_of "${hosts[0]%% *}")
[[ -n $first_ip ]] || die "cannot resolve ${hosts[0]%% *} to an IPv4 address"
if [[ -z ${KIND_API_SERVER_ADDRESS:-} ]]; then
	need ip "to find this machine's address toward the VMs (iproute2), or set KIND_API_SERVER_ADDRESS"
	KIND_API_SERVER_ADDRESS=$(ip -4 route get "$first_ip" | awk '{ for (i = 1; i < NF; i++) if ($i == "src" && !a) a = $(i + 1) } END { print a }')
	[[ -n $KIND_API_SERVER_ADDRESS ]] || die "no route to $first_ip: set KIND_API_SERVER_ADDRESS to this machine's address the VMs reach"
	log "The VMs reach this machine at $KIND_API_SERVER_ADDRESS (KIND_API_SERVER_ADDRESS)"
fi
api_server_url=https://$KIND_API_SERVER_ADDRESS:$KIND_API_SERVER_PORT

log "Rendering hack/kind/cluster.yaml for $api_server_url (Kubernetes $K8S_VERSION)"
"$GO" run -C hack/kind . -api-server-address "$KIND_API_SERVER_ADDRESS" -api-server-port "$KIND_API_SERVER_PORT" \
	-k8s-version "$K8S_VERSION" >"$WORK_DIR/cluster.yaml"

ensure_network
subnet=$(kind_subnet) || die "Docker network $KIND_DOCKER_NETWORK has no IPv4 subnet"
trap on_exit EXIT

log "Creating kind cluster $CLUSTER_NAME"
# kind merges into an existing kubeconfig; start from none.
rm -f "$KUBECONFIG"
KIND_EXPERIMENTAL_DOCKER_NETWORK=$KIND_DOCKER_NETWORK "$KIND" create cluster --name "$CLUSTER_NAME" \
	--config "$WORK_DIR/cluster.yaml" --kubeconfig "$KUBECONFIG"

# kube-flannel's CNI configuration delegates to the bridge plugin, which
# kind's node image does not ship (it has host-local, loopback, ptp and
# portmap): build it from the version hack/kind/go.mod pins.
nodes=$("$KIND" get nodes --name "$CLUSTER_NAME")
arch=$("$DOCKER" exec "${nodes%%$'\n'*}" uname -m)
case $arch in
x86_64) goarch=amd64 ;;
aarch64) goarch=arm64 ;;
*) die "kind node architecture $arch is not supported" ;;
esac
log "Installing the CNI bridge plugin (linux/$goarch) on the kind nodes"
GOOS=linux GOARCH=$goarch CGO_ENABLED=0 "$GO" build -C hack/kind -trimpath -o "$WORK_DIR/bridge" \
	github.com/containernetworking/plugins/plugins/main/bridge
for node in $nodes; do
	"$DOCKER" cp "$WORK_DIR/bridge" "$node:/opt/cni/bin/bridge"
done

log "Installing kube-flannel (VXLAN, VNI 4096, port 4789)"
"$KUSTOMIZE" build hack/kind/kube-flannel | "$KUBECTL" apply -f -
"$KUBECTL" -n kube-flannel rollout status ds/kube-flannel-ds --timeout=5m
"$KUBECTL" wait --for=condition=Ready nodes --all --timeout=5m

if [[ ${SKIP_ROUTES:-} != 1 ]]; then
	add_routes "$subnet" "$KIND_API_SERVER_ADDRESS"
fi

IMG=${IMG:-localhost/openwmco/wmco:e2e-$(git rev-parse --short HEAD)}
if [[ ${SKIP_IMAGE_BUILD:-} != 1 ]]; then
	log "Building $IMG (make image: the operator and the Windows payload of $K8S_VERSION)"
	"$MAKE" --no-print-directory image IMG="$IMG" K8S_VERSION="$K8S_VERSION"
fi
log "Loading $IMG into kind"
"$KIND" load docker-image "$IMG" --name "$CLUSTER_NAME"

log "Deploying the operator into $NAMESPACE (make deploy)"
"$MAKE" --no-print-directory deploy IMG="$IMG" NAMESPACE="$NAMESPACE"
# kube-public/cluster-info names the control-plane container
# ($CLUSTER_NAME-control-plane:6443), which the VMs cannot resolve.
"$KUBECTL" -n "$NAMESPACE" patch deployment wmco --type=json \
	-p "[{\"op\": \"add\", \"path\": \"/spec/template/spec/containers/0/args/-\", \"value\": \"--api-server-url=$api_server_url\"}]"
"$KUBECTL" -n "$NAMESPACE" rollout status deployment/wmco --timeout=5m

log "Creating the SSH key Secret and the WindowsNodeConfig (network type Flannel)"
# Through a pipe, never a file or the log: the key stays out of both.
"$KUBECTL" -n "$NAMESPACE" create secret generic cloud-private-key --from-file=private-key.pem="$SSH_KEY" \
	--dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
"$KUBECTL" apply -f - <<'YAML'
apiVersion: wmco.io/v1alpha1
kind: WindowsNodeConfig
metadata:
  name: cluster
spec:
  network:
    # VNI, port and the cluster network are read from kube-flannel's
    # ConfigMap (hack/kind/kube-flannel), which is what this run proves.
    type: Flannel
    flannel:
      backend: VXLAN
YAML

log "Port-forwarding the operator's metrics to 127.0.0.1:$METRICS_PORT"
"$KUBECTL" -n "$NAMESPACE" create serviceaccount e2e-metrics --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
"$KUBECTL" create clusterrolebinding e2e-metrics --clusterrole=wmco-metrics-reader \
	--serviceaccount="$NAMESPACE:e2e-metrics" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
"$KUBECTL" -n "$NAMESPACE" port-forward svc/wmco-metrics "$METRICS_PORT:8443" >"$WORK_DIR/logs/port-forward.log" 2>&1 &
pf_pid=$!
for _ in $(seq 60); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$METRICS_PORT") 2>/dev/null; then
		break
	fi
	kill -0 "$pf_pid" 2>/dev/null || die "kubectl port-forward exited (see $WORK_DIR/logs/port-forward.log)"
	sleep 1
done
metrics_token=$("$KUBECTL" -n "$NAMESPACE" create token e2e-metrics --duration=6h)

log "Running the e2e suite against ${#hosts[@]} Windows hosts (timeout $E2E_TIMEOUT)"
e2e_args=()
if [[ -n ${E2E_ARGS:-} ]]; then
	read -ra e2e_args <<<"$E2E_ARGS"
fi
WMCO_E2E_PROVIDER=byoh WMCO_E2E_NAMESPACE=$NAMESPACE WMCO_E2E_HOSTS=$WINDOWS_HOSTS WMCO_E2E_SSH_KEY=$SSH_KEY \
	WMCO_E2E_USERNAME=$WINDOWS_USER WMCO_E2E_METRICS_URL=https://127.0.0.1:$METRICS_PORT/metrics \
	WMCO_E2E_METRICS_TOKEN=$metrics_token \
	"$GO" test -tags e2e ./test/e2e/... -count=1 -timeout "$E2E_TIMEOUT" -v -ginkgo.v "${e2e_args[@]}" 2>&1 |
	tee "$WORK_DIR/logs/e2e.log"
log "The e2e suite passed"
