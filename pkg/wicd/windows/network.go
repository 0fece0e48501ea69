//go:build windows

package windows

import (
	"fmt"

	"github.com/Microsoft/hcsshim/hcn"
)

// network is wicd.Network over the Host Network Service's v2 API (hcn),
// available on Windows Server 2019 and later.
type network struct{}

// ListNetworks returns the names of all HNS networks.
func (network) ListNetworks() ([]string, error) {
	nets, err := hcn.ListNetworks()
	if err != nil {
		return nil, fmt.Errorf("list HNS networks: %w", err)
	}
	names := make([]string, 0, len(nets))
	for _, n := range nets {
		names = append(names, n.Name)
	}
	return names, nil
}

// DeleteNetwork deletes every HNS network named name (HNS does not keep
// names unique); none is not an error.
func (network) DeleteNetwork(name string) error {
	nets, err := hcn.ListNetworks()
	if err != nil {
		return fmt.Errorf("list HNS networks: %w", err)
	}
	for _, n := range nets {
		if n.Name != name {
			continue
		}
		if err := n.Delete(); err != nil {
			return fmt.Errorf("delete HNS network %s (%s): %w", name, n.Id, err)
		}
	}
	return nil
}
