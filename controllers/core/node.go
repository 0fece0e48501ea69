package core

import (
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

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

// OperatorNodes passes the events of the Nodes the operator made (labelled
// wmco.io/instance): creation, deletion, and an update that gives or takes
// the label or for which changed says yes.
func OperatorNodes(changed func(old, cur *corev1.Node) bool) predicate.Funcs {
	ours := func(o client.Object) bool {
		_, ok := o.GetLabels()[wmcov1.LabelInstance]
		return ok
	}
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return ours(e.Object) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return ours(e.Object) },
		GenericFunc: func(e event.GenericEvent) bool { return ours(e.Object) },
		UpdateFunc: func(e event.UpdateEvent) bool {
			if !ours(e.ObjectOld) && !ours(e.ObjectNew) {
				return false
			}
			o, ok1 := e.ObjectOld.(*corev1.Node)
			n, ok2 := e.ObjectNew.(*corev1.Node)
			return !ok1 || !ok2 || ours(o) != ours(n) || changed(o, n)
		},
	}
}
