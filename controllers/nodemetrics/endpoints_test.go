package nodemetrics_test

import (
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/openwmco/wmco/controllers/nodemetrics"
)

func winNode(name string, ready corev1.ConditionStatus, addrs ...corev1.NodeAddress) corev1.Node {
	n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)}}
	n.Status.Addresses = addrs
	if ready != "" {
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}, {Type: corev1.NodeReady, Status: ready}}
	}
	return n
}

func internal(ip string) corev1.NodeAddress {
	return corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip}
}

func endpoint(node, ip string, ready bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses:  []string{ip},
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(ready), Terminating: ptr.To(false)},
		NodeName:   ptr.To(node),
		TargetRef:  &corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: node, UID: types.UID("uid-" + node)},
	}
}

func TestServiceFor(t *testing.T) {
	g := NewWithT(t)
	svc := nodemetrics.ServiceFor("ns")
	g.Expect(svc.Namespace).To(Equal("ns"))
	g.Expect(svc.Name).To(Equal("windows-exporter"))
	g.Expect(svc.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
	g.Expect(svc.Spec.Selector).To(BeNil(), "the operator writes the endpoints")
	g.Expect(svc.Spec.Ports).To(HaveLen(1))
	g.Expect(svc.Spec.Ports[0].Name).To(Equal("metrics"))
	g.Expect(svc.Spec.Ports[0].Port).To(Equal(int32(9182)))
	g.Expect(svc.Labels).To(HaveKeyWithValue("app.kubernetes.io/name", "windows-exporter"))
}

func TestDesiredSlices(t *testing.T) {
	svc := nodemetrics.ServiceFor("ns")
	svc.UID = "svc-uid"
	for _, tc := range []struct {
		name  string
		nodes []corev1.Node
		want  map[string][]discoveryv1.Endpoint // slice name -> endpoints
	}{
		{name: "no nodes", want: map[string][]discoveryv1.Endpoint{}},
		{
			name: "ready and not ready, ordered by name; other address types ignored",
			nodes: []corev1.Node{
				winNode("b", corev1.ConditionFalse, internal("10.0.0.2")),
				winNode("a", corev1.ConditionTrue, corev1.NodeAddress{Type: corev1.NodeHostName, Address: "a"},
					corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.1"}, internal("10.0.0.1"), internal("10.0.0.9")),
				winNode("c", corev1.ConditionUnknown, internal("10.0.0.3")),
				winNode("d", "", internal("10.0.0.4")),
			},
			want: map[string][]discoveryv1.Endpoint{"windows-exporter-ipv4-0": {
				endpoint("a", "10.0.0.1", true), endpoint("b", "10.0.0.2", false),
				endpoint("c", "10.0.0.3", false), endpoint("d", "10.0.0.4", false),
			}},
		},
		{
			name: "dual stack, an IPv4-mapped address, a node without an InternalIP, garbage",
			nodes: []corev1.Node{
				winNode("a", corev1.ConditionTrue, internal("fd00::1"), internal("10.0.0.1")),
				winNode("b", corev1.ConditionTrue, internal("::ffff:10.0.0.2")),
				winNode("c", corev1.ConditionTrue, corev1.NodeAddress{Type: corev1.NodeHostName, Address: "c"}),
				winNode("d", corev1.ConditionTrue, internal("not-an-ip"), internal("fe80::1%eth0")),
			},
			want: map[string][]discoveryv1.Endpoint{
				"windows-exporter-ipv4-0": {endpoint("a", "10.0.0.1", true), endpoint("b", "10.0.0.2", true)},
				"windows-exporter-ipv6-0": {endpoint("a", "fd00::1", true)},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got := map[string][]discoveryv1.Endpoint{}
			for _, es := range nodemetrics.DesiredSlices(svc, tc.nodes) {
				g.Expect(es.Namespace).To(Equal("ns"))
				g.Expect(es.Labels).To(Equal(map[string]string{
					"kubernetes.io/service-name": "windows-exporter", "endpointslice.kubernetes.io/managed-by": "nodemetrics.wmco.io",
				}))
				g.Expect(es.OwnerReferences).To(Equal([]metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: "windows-exporter", UID: "svc-uid", Controller: ptr.To(true)}}))
				g.Expect(es.Ports).To(Equal([]discoveryv1.EndpointPort{{Name: ptr.To("metrics"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(int32(9182))}}))
				for k, v := range es.Labels {
					g.Expect(validation.IsQualifiedName(k)).To(BeEmpty(), k)
					g.Expect(validation.IsValidLabelValue(v)).To(BeEmpty(), v)
				}
				got[es.Name] = es.Endpoints
			}
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

func TestDesiredSlicesSplitsLargeLists(t *testing.T) {
	g := NewWithT(t)
	var nodes []corev1.Node
	for i := range 250 {
		nodes = append(nodes, winNode(fmt.Sprintf("n%03d", i), corev1.ConditionTrue, internal(fmt.Sprintf("10.0.%d.%d", i/200, i%200+1))))
	}
	slices := nodemetrics.DesiredSlices(nodemetrics.ServiceFor("ns"), nodes)
	g.Expect(slices).To(HaveLen(3))
	for i, n := range []int{100, 100, 50} {
		g.Expect(slices[i].Name).To(Equal(fmt.Sprintf("windows-exporter-ipv4-%d", i)))
		g.Expect(slices[i].Endpoints).To(HaveLen(n))
	}
	g.Expect(*slices[2].Endpoints[49].NodeName).To(Equal("n249"))
}
