//go:build windows

package windows

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"

	"github.com/Microsoft/hcsshim/hcn"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// CreateNetwork implements wicd.NetworkCreator: an HNS network with one
// static subnet routed through its gateway, bound to the adapter holding
// n.AdapterAddress, as sig-windows-tools creates flannel's "External"
// network (New-HNSNetwork -Type Overlay|L2Bridge -AddressPrefix
// -Gateway -AdapterName [-SubnetPolicies VSID]).
func (network) CreateNetwork(_ context.Context, n wicdapi.HostNetwork) error {
	adapter, err := adapterWithAddress(n.AdapterAddress)
	if err != nil {
		return err
	}
	subnet := hcn.Subnet{
		IpAddressPrefix: n.AddressPrefix,
		Routes:          []hcn.Route{{NextHop: n.Gateway, DestinationPrefix: "0.0.0.0/0"}},
	}
	if n.Type == wicdapi.HostNetworkOverlay {
		vsid, err := json.Marshal(hcn.VsidPolicySetting{IsolationId: uint32(n.VSID)}) //nolint:gosec // validated range
		if err != nil {
			return err
		}
		policy, err := json.Marshal(hcn.SubnetPolicy{Type: hcn.VSID, Settings: vsid})
		if err != nil {
			return err
		}
		subnet.Policies = append(subnet.Policies, policy)
	}
	adapterSetting, err := json.Marshal(hcn.NetAdapterNameNetworkPolicySetting{NetworkAdapterName: adapter})
	if err != nil {
		return err
	}
	hnsNetwork := &hcn.HostComputeNetwork{
		Name:          n.Name,
		Type:          hcn.NetworkType(n.Type),
		Ipams:         []hcn.Ipam{{Type: "Static", Subnets: []hcn.Subnet{subnet}}},
		Policies:      []hcn.NetworkPolicy{{Type: hcn.NetAdapterName, Settings: adapterSetting}},
		SchemaVersion: hcn.SchemaVersion{Major: 2, Minor: 0},
	}
	if _, err := hnsNetwork.Create(); err != nil {
		return fmt.Errorf("create HNS network %s on adapter %q: %w", n.Name, adapter, err)
	}
	return nil
}

// adapterWithAddress is the name of the network adapter holding addr.
func adapterWithAddress(addr string) (string, error) {
	want, err := netip.ParseAddr(addr)
	if err != nil {
		return "", fmt.Errorf("adapter address %q: %w", addr, err)
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("list network adapters: %w", err)
	}
	for _, iface := range ifaces {
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == want {
				return iface.Name, nil
			}
		}
	}
	return "", fmt.Errorf("no network adapter holds %s", want)
}
