package core

import (
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
)

// DesiredNodeName is the name an instance's host should register as:
// spec.nodeName when set, else spec.hostname (the computer name the
// operator gives the host before it joins), else the host's hostname in
// lower case, else (hostname not known) the name recorded in status.
func DesiredNodeName(wi *wmcov1.WindowsInstance, hostname string) string {
	switch {
	case wi.Spec.NodeName != "":
		return wi.Spec.NodeName
	case wi.Spec.Hostname != "":
		return wi.Spec.Hostname
	case hostname != "":
		return strings.ToLower(hostname)
	default:
		return wi.Status.NodeName
	}
}

// NodeName is the name the instance's host has registered, or will
// register, as: status.nodeName once the operator recorded it (it does so
// before it renders a plan with that name), else the desired name from
// the hostname last observed.
func NodeName(wi *wmcov1.WindowsInstance) string {
	if wi.Status.NodeName != "" {
		return wi.Status.NodeName
	}
	return DesiredNodeName(wi, wi.Status.Host.Hostname)
}

// OwnsNode reports whether node is the instance's: it carries the
// instance's label (the kubelet registers with it), or one of its
// InternalIP addresses is among the addresses observed on the host.
// Addresses are compared as IP addresses, not as strings.
func OwnsNode(wi *wmcov1.WindowsInstance, node *corev1.Node) bool {
	if node.Labels[wmcov1.LabelInstance] == wi.Name {
		return true
	}
	for _, a := range node.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(strings.TrimSpace(a.Address))
		if err != nil {
			continue
		}
		for _, h := range wi.Status.Host.Addresses {
			if hip, err := netip.ParseAddr(strings.TrimSpace(h)); err == nil && hip.Unmap() == ip.Unmap() {
				return true
			}
		}
	}
	return false
}
