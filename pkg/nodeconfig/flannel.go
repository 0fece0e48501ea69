/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"encoding/binary"
	"net/netip"
	"strconv"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// Flannel on the host, as sig-windows-tools runs it and flannel's
// Windows backends (v0.28) expect.
const (
	// FlannelDir holds flanneld's configuration and subnet file.
	FlannelDir = wicdapi.InstallRoot + `\flannel`
	// FlannelNetConfPath is the net-conf.json the plan writes with the
	// resolved network, backend, VNI and port (flanneld
	// --net-config-path).
	FlannelNetConfPath = FlannelDir + `\net-conf.json`
	// FlannelSubnetFilePath is where flanneld writes its subnet.env.
	FlannelSubnetFilePath = FlannelDir + `\subnet.env`
	// ServiceFlanneld is flanneld's service.
	ServiceFlanneld = "flanneld"
	// FlannelExternalNetwork is the HNS network the agent creates before
	// flanneld starts ("External" in sig-windows-tools), so the host's
	// adapter already sits on a virtual switch when flanneld creates its
	// network; its subnet is never used by pods.
	FlannelExternalNetwork = "External"
	// FlannelHostGWNetwork is the L2Bridge network flannel's host-gw
	// backend creates (its Windows default name).
	FlannelHostGWNetwork = "cbr0"
	// FlannelExternalPrefix and FlannelExternalGateway are the External
	// network's subnet; FlannelExternalVSID the overlay one's VSID.
	FlannelExternalPrefix  = "192.168.255.0/30"
	FlannelExternalGateway = "192.168.255.1"
	FlannelExternalVSID    = 9999
	// MinFlannelVNI is the smallest VNI flannel accepts on Windows.
	MinFlannelVNI = 4096
)

// FlannelVXLANNetwork is the Overlay network flannel's vxlan backend
// creates for vni: "flannel.<vni>", its Windows default name.
func FlannelVXLANNetwork(vni int32) string { return "flannel." + strconv.Itoa(int(vni)) }

// flannelSettings are the resolved flannel settings.
type flannelSettings struct {
	// backend as net-conf.json spells it: FlannelBackendTypeVXLAN or
	// FlannelBackendTypeHostGW.
	backend string
	// vni and port of the vxlan backend; 0 for host-gw.
	vni, port int32
}

func (f *flannelSettings) vxlan() bool { return f.backend == FlannelBackendTypeVXLAN }

// network is the HNS network flanneld creates.
func (f *flannelSettings) network() string {
	if f.vxlan() {
		return FlannelVXLANNetwork(f.vni)
	}
	return FlannelHostGWNetwork
}

// resolveFlannel resolves the flannel settings: the config, else the
// cluster's kube-flannel net-conf.json, else the defaults (VXLAN, VNI
// 4096, port 4789).
func resolveFlannel(spec wmcov1alpha1.NetworkSpec, cluster FlannelFacts, fail failFunc) *flannelSettings {
	f := &flannelSettings{backend: FlannelBackendTypeVXLAN}
	var cfg wmcov1alpha1.FlannelSpec
	if spec.Flannel != nil {
		cfg = *spec.Flannel
	}
	switch {
	case cfg.Backend == wmcov1alpha1.FlannelBackendVXLAN:
	case cfg.Backend == wmcov1alpha1.FlannelBackendHostGW:
		f.backend = FlannelBackendTypeHostGW
	case cfg.Backend != "":
		fail("config.network.flannel.backend", "%q is not %s or %s", cfg.Backend, wmcov1alpha1.FlannelBackendVXLAN, wmcov1alpha1.FlannelBackendHostGW)
	case cluster.Backend == FlannelBackendTypeVXLAN || cluster.Backend == FlannelBackendTypeHostGW:
		f.backend = cluster.Backend
	case cluster.Backend != "":
		fail("cluster.flannel.backend", "kube-flannel's backend %q (%s) is not supported on Windows: only %s and %s",
			cluster.Backend, cluster.Source, FlannelBackendTypeVXLAN, FlannelBackendTypeHostGW)
	}
	if !f.vxlan() {
		if cfg.VNI != nil {
			fail("config.network.flannel.vni", "applies only to the %s backend", wmcov1alpha1.FlannelBackendVXLAN)
		}
		if spec.VXLANPort != nil {
			fail("config.network.vxlanPort", "applies only to the %s backend", wmcov1alpha1.FlannelBackendVXLAN)
		}
		return f
	}
	var vniField, portField string
	f.vni, vniField = Setting[int32]{
		Config: cfg.VNI, ConfigFrom: "config.network.flannel.vni",
		Cluster: cluster.VNI, ClusterFrom: "cluster.flannel.vni",
		Default: DefaultFlannelVNI, DefaultFrom: "config.network.flannel.vni",
	}.Resolve()
	// flanneld on Windows refuses a VNI below 4096.
	if f.vni < MinFlannelVNI || f.vni > 1<<24-1 {
		fail(vniField, "%d must be between %d and %d: flannel on Windows needs a VNI of at least %d", f.vni, MinFlannelVNI, 1<<24-1, MinFlannelVNI)
	}
	f.port, portField = Setting[int32]{
		Config: spec.VXLANPort, ConfigFrom: "config.network.vxlanPort",
		Cluster: cluster.Port, ClusterFrom: "cluster.flannel.port",
		Default: DefaultVXLANPort, DefaultFrom: "config.network.vxlanPort",
	}.Resolve()
	// flanneld on Windows supports only the default VXLAN port.
	if f.port != DefaultVXLANPort {
		fail(portField, "%d is not supported: flannel on Windows only uses VXLAN port %d", f.port, DefaultVXLANPort)
	}
	return f
}

// flannelNetConf is flannel's net-conf.json.
type flannelNetConf struct {
	Network string             `json:"Network"`
	Backend flannelBackendConf `json:"Backend"`
}

type flannelBackendConf struct {
	Type string `json:"Type"`
	Name string `json:"Name"`
	VNI  int32  `json:"VNI,omitempty"`
	Port int32  `json:"Port,omitempty"`
}

// renderFlannelNetConf renders flanneld's net-conf.json; the network's
// name is explicit, so kube-proxy and the CNI configuration name the
// same one.
func renderFlannelNetConf(r *resolved) ([]byte, error) {
	f := r.flannel
	return marshal(flannelNetConf{
		Network: r.clusterCIDR.String(),
		Backend: flannelBackendConf{Type: f.backend, Name: f.network(), VNI: f.vni, Port: f.port},
	})
}

// flannelHostNetwork is the External network the agent creates before
// flanneld starts: an Overlay network (VSID 9999) for vxlan, L2Bridge
// for host-gw, on the adapter of the node IP.
func flannelHostNetwork(r *resolved) wicdapi.HostNetwork {
	n := wicdapi.HostNetwork{
		Name: FlannelExternalNetwork, Type: wicdapi.HostNetworkL2Bridge,
		AddressPrefix: FlannelExternalPrefix, Gateway: FlannelExternalGateway,
		AdapterAddress: r.nodeIP.String(),
	}
	if r.flannel.vxlan() {
		n.Type, n.VSID = wicdapi.HostNetworkOverlay, FlannelExternalVSID
	}
	return n
}

// flanneldService is flanneld with the kube subnet manager: it reads its
// node's spec.podCIDR and the other nodes' with the kubelet's
// credentials (the operator's ClusterRole wmco:flannel lets the node
// list them), and creates the HNS network of its backend on the
// node IP's adapter. flanneld never connects to the service control
// manager (flannel v0.28 has no Windows service code), so it runs under
// the agent's service host, and under kube-log-runner inside that.
func flanneldService(r *resolved) service {
	return service{
		name:        ServiceFlanneld,
		displayName: "flannel",
		description: "Creates the node's flannel network to the cluster's pod network.",
		binary:      r.payload.HostPath(payload.FlanneldPath),
		args: []string{
			"--kube-subnet-mgr",
			"--kubeconfig-file=" + KubeconfigPath,
			"--iface=" + r.nodeIP.String(),
			"--ip-masq",
			"--net-config-path=" + FlannelNetConfPath,
			"--subnet-file=" + FlannelSubnetFilePath,
		},
		env: map[string]string{"NODE_NAME": r.nodeName},
		// Cleanup removes flannel's network with the others.
		// The kubelet writes the kubeconfig flanneld uses.
		deps:        []string{ServiceKubelet},
		logRunner:   true,
		serviceHost: true,
	}
}

// renderFlannelCNIConfig renders the win-overlay (vxlan) or win-bridge
// (host-gw) configuration on flannel's network, pods getting addresses
// from the Node's podCIDR.
func renderFlannelCNIConfig(r *resolved) ([]byte, error) {
	subnet := r.hostSubnet
	noNAT := []string{r.clusterCIDR.String(), r.serviceCIDR.String()}
	policies := []cniPolicy{
		{Name: "EndpointPolicy", Value: cniPolicyValue{Type: "OutBoundNAT", Settings: map[string]any{"Exceptions": noNAT}}},
		// Service traffic goes to the host, where kube-proxy's load
		// balancers are.
		{Name: "EndpointPolicy", Value: cniPolicyValue{Type: "SDNRoute", Settings: map[string]any{
			"DestinationPrefix": r.serviceCIDR.String(), "NeedEncap": true,
		}}},
	}
	ipam := cniIPAM{Type: "host-local", Subnet: subnet.String()}
	pluginType := "win-overlay"
	if r.flannel.vxlan() {
		// Gateway .1 is the overlay network's; the last usable address
		// is kube-proxy's source VIP.
		_, lastPod := sourceVIP(subnet)
		ipam.RangeStart, ipam.RangeEnd = nthAddr(subnet, 2).String(), lastPod.String()
	} else {
		pluginType = "win-bridge"
		// .1 is the L2Bridge network's gateway and .2 the bridge
		// endpoint flanneld attaches to the host (win-bridge makes it
		// the pods' gateway): pods start at .3.
		ipam.RangeStart, ipam.RangeEnd = nthAddr(subnet, 3).String(), lastUsable(subnet).String()
		// The host itself is reached through the bridge endpoint.
		policies = append(policies, cniPolicy{Name: "EndpointPolicy", Value: cniPolicyValue{Type: "SDNRoute", Settings: map[string]any{
			"DestinationPrefix": netip.PrefixFrom(r.nodeIP, 32).String(), "NeedEncap": true,
		}}})
	}
	return marshal(cniConfig{
		CNIVersion:   "0.2.0",
		Name:         r.flannel.network(),
		Type:         pluginType,
		APIVersion:   2,
		Capabilities: map[string]any{"portMappings": true, "dns": true},
		IPAM:         ipam,
		Policies:     policies,
	})
}

// renderFlannelKubeProxyConfig renders kube-proxy's configuration on
// flannel's network: an overlay needs a source VIP in the podCIDR
// (WinOverlay is GA and locked on since Kubernetes 1.34, no feature
// gate); host-gw's L2Bridge needs none.
func renderFlannelKubeProxyConfig(r *resolved) ([]byte, error) {
	c := baseKubeProxyConfig(r, r.flannel.network())
	if r.flannel.vxlan() {
		vip, _ := sourceVIP(r.hostSubnet)
		c.Winkernel.SourceVip = vip.String()
	}
	return marshal(c)
}

// nthAddr is the n-th address of an IPv4 subnet (0 is the subnet's).
func nthAddr(subnet netip.Prefix, n uint32) netip.Addr {
	a := subnet.Masked().Addr().As4()
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(a[:])+n)
	return netip.AddrFrom4(b)
}

// lastUsable is the address before an IPv4 subnet's broadcast address.
func lastUsable(subnet netip.Prefix) netip.Addr {
	vip, _ := sourceVIP(subnet)
	return vip
}

// validateFlannelPayload checks that the payload holds what flannel
// needs: flanneld (optional in a payload) and, for host-gw, win-bridge.
func validateFlannelPayload(m *payload.Manifest, f *flannelSettings, fail failFunc) {
	if m == nil || f == nil {
		return
	}
	need := []string{payload.FlanneldPath}
	if !f.vxlan() {
		need = append(need, payload.CNIWinBridgePath)
	}
	for _, p := range need {
		if _, ok := m.File(p); !ok {
			fail("payload", "holds no %s, which network type %s needs; build the payload with make payload", p, wmcov1alpha1.NetworkFlannel)
		}
	}
}
