/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package wicd

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// nodeService is a node service another installer may have put on a host
// (a kubeadm-style install, an older WMCO, a manual setup).
type nodeService struct {
	name, exe     string
	check, reason string
}

// nodeServices are checked by preflight besides containerd.
var nodeServices = []nodeService{
	{name: "kubelet", exe: "kubelet.exe", check: wicdapi.CheckKubelet, reason: wicdapi.ReasonForeignKubelet},
	{name: "kube-proxy", exe: "kube-proxy.exe", check: wicdapi.CheckKubeProxy, reason: wicdapi.ReasonForeignKubeProxy},
}

// foreignServiceChecks returns a check per node service: failed when the
// service exists and this operator did not install it.
func foreignServiceChecks(ctx context.Context, b *Backend) ([]wicdapi.Check, error) {
	applied, err := appliedPlan(b.Files)
	if err != nil {
		// An unreadable applied plan proves nothing either way; the
		// payload folder still tells.
		applied = nil
	}
	var out []wicdapi.Check
	for _, ns := range nodeServices {
		bin, err := foreignService(ctx, b, applied, ns.name, ns.exe)
		if err != nil {
			return nil, err
		}
		if bin == "" {
			out = append(out, wicdapi.Check{Name: ns.check, Passed: true})
			continue
		}
		out = append(out, wicdapi.Check{Name: ns.check, Reason: ns.reason,
			Message: "a " + ns.name + " service not installed by this operator exists (binary " + bin + "); remove it first"})
	}
	return out, nil
}

// foreignService returns the binary of service name when it exists and is
// not this operator's, or "". The operator's services run exe from a
// payload folder, directly or under kube-log-runner; a service the
// applied plan lists with the binary and arguments it is installed with
// is the operator's too.
func foreignService(ctx context.Context, b *Backend, applied *wicdapi.Plan, name, exe string) (string, error) {
	st, err := b.Services.Query(ctx, name)
	if errors.Is(err, ErrServiceNotFound) {
		return "", nil
	}
	if err != nil {
		return "", codedError(wicdapi.CodeServiceFailed, "query %s service: %v", name, err)
	}
	bin := st.Config.Binary
	if underDir(bin, wicdapi.PayloadRoot) && strings.HasSuffix(strings.ToLower(bin), `\`+exe) {
		return "", nil
	}
	if underDir(bin, wicdapi.PayloadRoot) {
		for _, a := range st.Config.Args { // wrapped by kube-log-runner
			if underDir(a, wicdapi.PayloadRoot) && strings.HasSuffix(strings.ToLower(a), `\`+exe) {
				return "", nil
			}
		}
	}
	if applied != nil {
		for _, s := range applied.Services {
			if strings.EqualFold(s.Name, name) && strings.EqualFold(s.Binary, bin) && slices.Equal(s.Args, st.Config.Args) {
				return "", nil
			}
		}
	}
	return bin, nil
}
