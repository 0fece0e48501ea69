package nodemetrics

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

const (
	// ServiceName is the headless Service, in the operator's namespace,
	// whose EndpointSlices list the Windows Nodes' windows_exporter.
	ServiceName = "windows-exporter"
	// PortName names the metrics port on the Service and EndpointSlices
	// (what a ServiceMonitor's endpoint refers to).
	PortName = "metrics"
	// Port is windows_exporter's port on every host (the firewall rule
	// the plan opens).
	Port = wicdapi.WindowsExporterPort
	// ManagedBy is the endpointslice.kubernetes.io/managed-by value of
	// the operator's EndpointSlices: kube-controller-manager's
	// EndpointSlice controllers leave them alone (a label value, so no
	// "/": like their own endpointslice-controller.k8s.io).
	ManagedBy = "nodemetrics.wmco.io"
	// LabelName on the Service (app.kubernetes.io/name=windows-exporter)
	// selects it from a ServiceMonitor.
	LabelName = "app.kubernetes.io/name"
	// LabelManagedBy marks the Service as the operator's.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy.
	ManagedByValue = "wmco"

	// ServingCertAnnotation on the Service asks OpenShift's service CA
	// for a serving certificate (windows-exporter.<namespace>.svc) in the
	// Secret it names.
	ServingCertAnnotation = "service.beta.openshift.io/serving-cert-secret-name"

	// MaxEndpointsPerSlice is how many Nodes one EndpointSlice lists
	// (kube-controller-manager's default).
	MaxEndpointsPerSlice = 100
)

// ServiceFor is the headless Service without a selector whose
// EndpointSlices the operator writes.
func ServiceFor(namespace string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: ServiceName, Namespace: namespace,
			Labels: map[string]string{LabelName: ServiceName, LabelManagedBy: ManagedByValue},
		},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Ports: []corev1.ServicePort{{
				Name: PortName, Protocol: corev1.ProtocolTCP, Port: Port,
				TargetPort: intstr.FromInt32(Port),
			}},
		},
	}
}

// SliceName is the name of the index-th EndpointSlice of an address type.
func SliceName(t discoveryv1.AddressType, index int) string {
	return fmt.Sprintf("%s-%s-%d", ServiceName, strings.ToLower(string(t)), index)
}

// DesiredSlices are the EndpointSlices listing nodes for the Service svc:
// one endpoint per Node and address family, at the Node's first
// InternalIP of that family, with the Node's name, a reference to it and
// its readiness; IPv4 and IPv6 in slices of their own, at most
// MaxEndpointsPerSlice each, ordered by Node name. A Node without an
// InternalIP is left out. Every slice is owned by svc.
func DesiredSlices(svc *corev1.Service, nodes []corev1.Node) []discoveryv1.EndpointSlice {
	byType := map[discoveryv1.AddressType][]discoveryv1.Endpoint{}
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b corev1.Node) int { return strings.Compare(a.Name, b.Name) })
	for i := range sorted {
		n := &sorted[i]
		ready := nodeReady(n)
		seen := map[discoveryv1.AddressType]bool{}
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP {
				continue
			}
			ip, err := netip.ParseAddr(a.Address)
			if err != nil || ip.Zone() != "" {
				continue
			}
			t := discoveryv1.AddressTypeIPv4
			if !ip.Unmap().Is4() {
				t = discoveryv1.AddressTypeIPv6
			}
			if seen[t] {
				continue
			}
			seen[t] = true
			byType[t] = append(byType[t], discoveryv1.Endpoint{
				Addresses: []string{ip.Unmap().String()},
				Conditions: discoveryv1.EndpointConditions{
					Ready: ptr.To(ready), Serving: ptr.To(ready), Terminating: ptr.To(false),
				},
				NodeName:  ptr.To(n.Name),
				TargetRef: &corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: n.Name, UID: n.UID},
			})
		}
	}
	var out []discoveryv1.EndpointSlice
	for _, t := range []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6} {
		for i, chunk := range chunks(byType[t], MaxEndpointsPerSlice) {
			out = append(out, discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{
					Name: SliceName(t, i), Namespace: svc.Namespace,
					Labels: map[string]string{
						discoveryv1.LabelServiceName: svc.Name,
						discoveryv1.LabelManagedBy:   ManagedBy,
					},
					OwnerReferences: []metav1.OwnerReference{{
						APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID, Controller: ptr.To(true),
					}},
				},
				AddressType: t,
				Endpoints:   chunk,
				Ports: []discoveryv1.EndpointPort{{
					Name: ptr.To(PortName), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(int32(Port)),
				}},
			})
		}
	}
	return out
}

func chunks[T any](s []T, n int) [][]T {
	var out [][]T
	for len(s) > 0 {
		k := min(n, len(s))
		out = append(out, s[:k:k])
		s = s[k:]
	}
	return out
}

// nodeReady says whether the Node's Ready condition is True.
func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
