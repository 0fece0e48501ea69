/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"encoding/binary"
	"net/netip"
)

// cniConfig is a win-overlay CNI network configuration, using the HNS v2
// API (apiVersion 2) policy format.
type cniConfig struct {
	CNIVersion   string         `json:"cniVersion"`
	Name         string         `json:"name"`
	Type         string         `json:"type"`
	APIVersion   int            `json:"apiVersion"`
	Capabilities map[string]any `json:"capabilities"`
	IPAM         cniIPAM        `json:"ipam"`
	Policies     []cniPolicy    `json:"policies"`
}

type cniIPAM struct {
	Type       string `json:"type"`
	Subnet     string `json:"subnet"`
	RangeStart string `json:"rangeStart,omitempty"`
	RangeEnd   string `json:"rangeEnd"`
}

type cniPolicy struct {
	Name  string         `json:"name"`
	Value cniPolicyValue `json:"value"`
}

type cniPolicyValue struct {
	Type     string         `json:"type"`
	Settings map[string]any `json:"settings"`
}

// sourceVIP returns kube-proxy's source VIP for a host subnet, the last
// usable address (10.132.1.254 for 10.132.1.0/24), and the last address
// the CNI IPAM may give a pod, the one before it. The gateway is the first
// address, pods get the ones in between.
func sourceVIP(subnet netip.Prefix) (vip, lastPod netip.Addr) {
	base := subnet.Masked().Addr().As4()
	n := binary.BigEndian.Uint32(base[:])
	broadcast := n | (1<<(32-subnet.Bits()) - 1)
	var a, b [4]byte
	binary.BigEndian.PutUint32(a[:], broadcast-1)
	binary.BigEndian.PutUint32(b[:], broadcast-2)
	return netip.AddrFrom4(a), netip.AddrFrom4(b)
}

// renderCNIConfig renders the CNI configuration of the hybrid overlay
// network. Its name must be the HNS network hybrid-overlay-node creates:
// win-overlay looks the network up by name.
func renderCNIConfig(r *resolved) ([]byte, error) {
	_, lastPod := sourceVIP(r.hostSubnet)
	// No NAT for traffic to pods, on any of the cluster's pod networks,
	// and to services.
	noNAT := []string{r.clusterCIDR.String(), r.serviceCIDR.String()}
	for _, p := range r.podCIDRs {
		if p.Addr().Is4() {
			noNAT = append(noNAT, p.String())
		}
	}
	c := cniConfig{
		CNIVersion:   "0.2.0",
		Name:         HybridOverlayNetwork,
		Type:         "win-overlay",
		APIVersion:   2,
		Capabilities: map[string]any{"portMappings": true, "dns": true},
		// Pods get addresses up to lastPod: the last usable address is
		// kube-proxy's source VIP.
		IPAM: cniIPAM{Type: "host-local", Subnet: r.hostSubnet.String(), RangeEnd: lastPod.String()},
		Policies: []cniPolicy{
			// HNS v2's OutboundNatPolicySetting names the list
			// "Exceptions" (win-overlay reads Settings.Exceptions with
			// apiVersion 2); "ExceptionList" is HNS v1's, beside Type.
			{Name: "EndpointPolicy", Value: cniPolicyValue{Type: "OutBoundNAT", Settings: map[string]any{
				"Exceptions": noNAT,
			}}},
			// Service traffic goes through the overlay, where kube-proxy's
			// load balancers are.
			{Name: "EndpointPolicy", Value: cniPolicyValue{Type: "SDNRoute", Settings: map[string]any{
				"destinationPrefix": r.serviceCIDR.String(),
				"needEncap":         true,
			}}},
			// The host's address on the underlay, which hybrid-overlay-node
			// binds the HNS network to.
			{Name: "EndpointPolicy", Value: cniPolicyValue{Type: "ProviderAddress", Settings: map[string]any{
				"providerAddress": r.nodeIP.String(),
			}}},
		},
	}
	return marshal(c)
}

// kubeProxyConfiguration is a kubeproxy.config.k8s.io/v1alpha1
// KubeProxyConfiguration.
type kubeProxyConfiguration struct {
	Kind             string `json:"kind"`
	APIVersion       string `json:"apiVersion"`
	ClientConnection struct {
		Kubeconfig string `json:"kubeconfig"`
	} `json:"clientConnection"`
	ClusterCIDR      string `json:"clusterCIDR"`
	HostnameOverride string `json:"hostnameOverride"`
	Logging          struct {
		Verbosity int `json:"verbosity"`
	} `json:"logging"`
	Mode      string `json:"mode"`
	Winkernel struct {
		NetworkName string `json:"networkName"`
		SourceVip   string `json:"sourceVip"`
		EnableDSR   bool   `json:"enableDSR"`
	} `json:"winkernel"`
}

// renderKubeProxyConfig renders kube-proxy's configuration for the hybrid
// overlay network. On an overlay network kube-proxy needs a source VIP
// inside the host subnet; it creates the HNS endpoint for it itself.
func renderKubeProxyConfig(r *resolved) ([]byte, error) {
	vip, _ := sourceVIP(r.hostSubnet)
	c := baseKubeProxyConfig(r, HybridOverlayNetwork)
	c.Winkernel.SourceVip = vip.String()
	c.Winkernel.EnableDSR = true
	return marshal(c)
}

// baseKubeProxyConfig is kube-proxy's kernelspace configuration on the
// HNS network named network, for every pod network.
func baseKubeProxyConfig(r *resolved, network string) kubeProxyConfiguration {
	c := kubeProxyConfiguration{
		Kind:             "KubeProxyConfiguration",
		APIVersion:       "kubeproxy.config.k8s.io/v1alpha1",
		ClusterCIDR:      r.clusterCIDR.String(),
		HostnameOverride: r.nodeName,
		Mode:             "kernelspace",
	}
	c.ClientConnection.Kubeconfig = KubeconfigPath
	c.Logging.Verbosity = 2
	c.Winkernel.NetworkName = network
	return c
}
