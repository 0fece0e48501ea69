/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package wicd

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// NetworkCreator is a Network that can also create HNS networks
// (wicdapi.Plan.HostNetworks). A backend without it fails a plan that
// lists host networks.
type NetworkCreator interface {
	CreateNetwork(ctx context.Context, n wicdapi.HostNetwork) error
}

// networkPollInterval is how often the agent looks for a network a
// service requires while it waits for another service to create it.
const networkPollInterval = 250 * time.Millisecond

// validateHostNetworks checks the plan's host networks and the networks
// its services require.
func validateHostNetworks(p *wicdapi.Plan) error {
	seen := map[string]bool{}
	for _, n := range p.HostNetworks {
		if n.Name == "" || len(n.Name) > 128 {
			return fmt.Errorf("host network %q: the name must be 1 to 128 characters", n.Name)
		}
		if seen[n.Name] {
			return fmt.Errorf("host network %q is listed twice", n.Name)
		}
		seen[n.Name] = true
		if !slices.Contains(p.Networks, n.Name) {
			return fmt.Errorf("host network %q is not among the plan's networks, so cleanup would leave it", n.Name)
		}
		switch n.Type {
		case wicdapi.HostNetworkOverlay:
			if n.VSID < 4096 || n.VSID > 1<<24-1 {
				return fmt.Errorf("host network %s: VSID %d is not between 4096 and %d", n.Name, n.VSID, 1<<24-1)
			}
		case wicdapi.HostNetworkL2Bridge:
			if n.VSID != 0 {
				return fmt.Errorf("host network %s: an L2Bridge network has no VSID", n.Name)
			}
		default:
			return fmt.Errorf("host network %s: type %q is not %s or %s", n.Name, n.Type, wicdapi.HostNetworkOverlay, wicdapi.HostNetworkL2Bridge)
		}
		prefix, err := netip.ParsePrefix(n.AddressPrefix)
		if err != nil || prefix.Masked() != prefix || !prefix.Addr().Is4() {
			return fmt.Errorf("host network %s: address prefix %q is not an IPv4 CIDR", n.Name, n.AddressPrefix)
		}
		if gw, err := netip.ParseAddr(n.Gateway); err != nil || !prefix.Contains(gw) {
			return fmt.Errorf("host network %s: gateway %q is not an address in %s", n.Name, n.Gateway, prefix)
		}
		if a, err := netip.ParseAddr(n.AdapterAddress); err != nil || a.Zone() != "" {
			return fmt.Errorf("host network %s: adapter address %q is not an IP address", n.Name, n.AdapterAddress)
		}
	}
	for _, s := range p.Services {
		for _, n := range s.RequiresNetworks {
			if n == "" || len(n) > 128 {
				return fmt.Errorf("service %s: required network %q: the name must be 1 to 128 characters", s.Name, n)
			}
		}
	}
	return nil
}

// ensureHostNetworks creates the plan's host networks that do not exist.
func ensureHostNetworks(ctx context.Context, b *Backend, plan *wicdapi.Plan) ([]wicdapi.Change, error) {
	if len(plan.HostNetworks) == 0 {
		return nil, nil
	}
	creator, ok := b.Network.(NetworkCreator)
	if !ok {
		return nil, codedError(wicdapi.CodeNetwork, "this host's agent cannot create HNS networks")
	}
	have, err := b.Network.ListNetworks()
	if err != nil {
		return nil, codedError(wicdapi.CodeNetwork, "list HNS networks: %v", err)
	}
	var changes []wicdapi.Change
	for _, n := range plan.HostNetworks {
		if slices.Contains(have, n.Name) {
			continue
		}
		err := stepDo(ctx, plan.StepTimeout(), func(ctx context.Context) error { return creator.CreateNetwork(ctx, n) })
		if err != nil {
			return nil, codedError(wicdapi.CodeNetwork, "create HNS network %s: %v", n.Name, err)
		}
		changes = append(changes, wicdapi.Change{Kind: "network", Name: n.Name, Action: "created"})
	}
	return changes, nil
}

// waitForNetworks waits until every network svc requires exists, at most
// step: a service it depends on creates them once it runs.
func waitForNetworks(ctx context.Context, b *Backend, svc wicdapi.Service, step time.Duration) error {
	if len(svc.RequiresNetworks) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, step)
	defer cancel()
	t := time.NewTicker(networkPollInterval)
	defer t.Stop()
	for {
		have, err := b.Network.ListNetworks()
		if err != nil {
			return fmt.Errorf("list HNS networks: %w", err)
		}
		missing := ""
		for _, n := range svc.RequiresNetworks {
			if !slices.Contains(have, n) {
				missing = n
				break
			}
		}
		if missing == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("HNS network %s, which %s needs, does not exist after %s: %w", missing, svc.Name, step, ctx.Err())
		case <-t.C:
		}
	}
}
