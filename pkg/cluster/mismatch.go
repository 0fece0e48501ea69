package cluster

import (
	"fmt"
	"net/netip"
	"strings"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/bounded"
	"github.com/openwmco/wmco/pkg/nodeconfig"
)

// Where a network setting of the Windows hosts comes from, for messages.
const (
	fromSpecClusterCIDR = "WindowsNodeConfig " + wmcov1.WindowsNodeConfigName + " spec.network.clusterNetworkCIDR"
	fromSpecBackend     = "WindowsNodeConfig " + wmcov1.WindowsNodeConfigName + " spec.network.flannel.backend"
	fromSpecVNI         = "WindowsNodeConfig " + wmcov1.WindowsNodeConfigName + " spec.network.flannel.vni"
	fromSpecPort        = "WindowsNodeConfig " + wmcov1.WindowsNodeConfigName + " spec.network.vxlanPort"
	fromFlagClusterCIDR = "the operator's --cluster-cidr"
	fromWindowsDefault  = "flannel's default on Windows"
)

// NetworkMismatches names every difference between the network the
// Windows hosts would be given and the one the cluster runs, one sentence
// each with both values and where each came from; none when they match.
// Only network type Flannel is checked (spec is the WindowsNodeConfig's,
// defaulted). The hosts get spec's values where set, else the facts'
// (facts.ClusterNetworkCIDR differs from facts.Flannel.Network only when
// --cluster-cidr set it), else flannel's Windows defaults; the cluster's
// are kube-flannel's net-conf.json (facts.Flannel), where a VXLAN
// backend without VNI or port uses flannel's Linux defaults. Reported:
//
//   - no pod network known: no kube-flannel ConfigMap, and neither the
//     spec nor --cluster-cidr sets one;
//   - the cluster network CIDR differs from net-conf.json's Network;
//   - the backend, VNI or VXLAN port differs from net-conf.json's;
//   - a VNI below 4096 or a port other than 4789, which flannel refuses
//     on Windows;
//   - spec.network.vxlanPort with the host-gw backend;
//   - nodePodCIDR (the host's Node spec.podCIDR, "" before it joins)
//     outside the cluster network.
func NetworkMismatches(spec wmcov1.NetworkSpec, facts nodeconfig.ClusterFacts, nodePodCIDR string) []string {
	if spec.Type != wmcov1.NetworkFlannel {
		return nil
	}
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	fl := facts.Flannel
	netConf := fmt.Sprintf("net-conf.json of ConfigMap %s", fl.Source)

	// The pod network.
	clusterCIDR, clusterFrom := spec.ClusterNetworkCIDR, fromSpecClusterCIDR
	if clusterCIDR == "" {
		clusterCIDR, clusterFrom = facts.ClusterNetworkCIDR, fromFlagClusterCIDR
		if fl.Source != "" && sameCIDR(clusterCIDR, fl.Network) {
			clusterFrom = netConf
		}
	}
	switch {
	case clusterCIDR == "":
		add("network type Flannel needs the cluster's pod network: no ConfigMap %s in namespace %s, and neither %s nor %s is set "+
			"(the Nodes' podCIDRs show only the subnets allocated so far, not the network they come from)",
			FlannelConfigMapName, strings.Join(FlannelNamespaces, " or "), fromSpecClusterCIDR, fromFlagClusterCIDR)
	case fl.Source != "" && !sameCIDR(clusterCIDR, fl.Network):
		add("the cluster network %s (%s) differs from Network %s in %s", clusterCIDR, clusterFrom, fl.Network, netConf)
	}

	// The backend.
	backend, backendFrom := fl.Backend, netConf
	var specBackend wmcov1.FlannelBackend
	var specVNI *int32
	if spec.Flannel != nil {
		specBackend, specVNI = spec.Flannel.Backend, spec.Flannel.VNI
	}
	switch specBackend {
	case wmcov1.FlannelBackendVXLAN:
		backend, backendFrom = nodeconfig.FlannelBackendTypeVXLAN, fromSpecBackend
	case wmcov1.FlannelBackendHostGW:
		backend, backendFrom = nodeconfig.FlannelBackendTypeHostGW, fromSpecBackend
	}
	if backend == "" {
		backend, backendFrom = nodeconfig.FlannelBackendTypeVXLAN, fromWindowsDefault
	}
	if fl.Source != "" && backend != fl.Backend {
		add("the flannel backend %s (%s) differs from Backend.Type %s in %s", backend, backendFrom, fl.Backend, netConf)
	}
	if backend != nodeconfig.FlannelBackendTypeVXLAN {
		if spec.VXLANPort != nil {
			add("%s %d applies only to flannel's vxlan backend, and the backend is %s (%s)", fromSpecPort, *spec.VXLANPort, backend, backendFrom)
		}
		return append(out, podCIDRMismatch(nodePodCIDR, clusterCIDR, clusterFrom)...)
	}

	// VXLAN: the VNI and the port.
	vni, vniFrom := nodeconfig.Setting[int32]{
		Config: specVNI, ConfigFrom: fromSpecVNI,
		Cluster: fl.VNI, ClusterFrom: netConf,
		Default: FlannelWindowsMinVNI, DefaultFrom: fromWindowsDefault,
	}.Resolve()
	port, portFrom := nodeconfig.Setting[int32]{
		Config: spec.VXLANPort, ConfigFrom: fromSpecPort,
		Cluster: fl.Port, ClusterFrom: netConf,
		Default: FlannelWindowsPort, DefaultFrom: fromWindowsDefault,
	}.Resolve()
	if fl.Source != "" && fl.Backend == nodeconfig.FlannelBackendTypeVXLAN {
		clusterVNI, clusterVNIFrom := linuxValue(fl.VNI, "Backend.VNI", FlannelLinuxDefaultVNI)
		if vni != clusterVNI {
			add("the VXLAN VNI %d (%s) differs from %s in %s", vni, vniFrom, clusterVNIFrom, netConf)
		}
		clusterPort, clusterPortFrom := linuxValue(fl.Port, "Backend.Port", FlannelLinuxDefaultPort)
		if port != clusterPort {
			add("the VXLAN port %d (%s) differs from %s in %s", port, portFrom, clusterPortFrom, netConf)
		}
	}
	if vni < FlannelWindowsMinVNI {
		add("the VXLAN VNI %d (%s) is below %d, the least flannel accepts on Windows (set Backend.VNI to %d or more in kube-flannel's net-conf.json)",
			vni, vniFrom, FlannelWindowsMinVNI, FlannelWindowsMinVNI)
	}
	if port != FlannelWindowsPort {
		add("the VXLAN port %d (%s) is not %d, the only one flannel accepts on Windows (set Backend.Port to %d in kube-flannel's net-conf.json)",
			port, portFrom, FlannelWindowsPort, FlannelWindowsPort)
	}
	return append(out, podCIDRMismatch(nodePodCIDR, clusterCIDR, clusterFrom)...)
}

// linuxValue is what the cluster's flannel uses for field (v, else the
// Linux default) and how to say it.
func linuxValue(v int32, field string, linuxDefault int32) (int32, string) {
	if v != 0 {
		return v, fmt.Sprintf("%s %d", field, v)
	}
	return linuxDefault, fmt.Sprintf("%s (unset: %d, flannel's default on Linux)", field, linuxDefault)
}

// podCIDRMismatch says when the Node's podCIDR is not within the cluster
// network (nothing when either is unknown).
func podCIDRMismatch(podCIDR, clusterCIDR, clusterFrom string) []string {
	if podCIDR == "" || clusterCIDR == "" {
		return nil
	}
	network, err := netip.ParsePrefix(clusterCIDR)
	if err != nil {
		return []string{fmt.Sprintf("the cluster network %s (%s) is not a CIDR", bounded.Quote(clusterCIDR), clusterFrom)}
	}
	pod, err := netip.ParsePrefix(podCIDR)
	if err != nil {
		return []string{fmt.Sprintf("the Node's podCIDR %s is not a CIDR", bounded.Quote(podCIDR))}
	}
	if pod.Bits() < network.Bits() || !network.Contains(pod.Addr()) {
		return []string{fmt.Sprintf("the Node's podCIDR %s is outside the cluster network %s (%s)", pod, network.Masked(), clusterFrom)}
	}
	return nil
}

// sameCIDR reports whether a and b are the same network (spelled alike
// when either is not a CIDR).
func sameCIDR(a, b string) bool {
	pa, errA := netip.ParsePrefix(a)
	pb, errB := netip.ParsePrefix(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return pa.Masked() == pb.Masked()
}
