package core

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
)

func TestOwnsNode(t *testing.T) {
	inst := &wmcov1.WindowsInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "win"},
		Status:     wmcov1.WindowsInstanceStatus{Host: wmcov1.HostFacts{Addresses: []string{"10.0.0.5", "fd00::5"}}},
	}
	node := func(labels map[string]string, addrs ...corev1.NodeAddress) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: labels}, Status: corev1.NodeStatus{Addresses: addrs}}
	}
	internal := func(a string) corev1.NodeAddress { return corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a} }
	cases := []struct {
		name string
		node *corev1.Node
		want bool
	}{
		{"label", node(map[string]string{wmcov1.LabelInstance: "win"}), true},
		{"another instance's label", node(map[string]string{wmcov1.LabelInstance: "win-2"}, internal("10.0.0.9")), false},
		{"internal IP", node(nil, internal("10.0.0.9"), internal("10.0.0.5")), true},
		{"internal IPv6 written long", node(nil, internal("fd00:0:0:0:0:0:0:5")), true},
		{"external IP only", node(nil, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "10.0.0.5"}), false},
		{"hostname address", node(nil, corev1.NodeAddress{Type: corev1.NodeHostName, Address: "10.0.0.5"}), false},
		{"prefix of an address", node(nil, internal("10.0.0.50")), false},
		{"nothing", node(nil), false},
	}
	for _, tc := range cases {
		NewWithT(t).Expect(OwnsNode(inst, tc.node)).To(Equal(tc.want), tc.name)
	}
}

func TestDesiredNodeName(t *testing.T) {
	cases := []struct {
		name                  string
		nodeName, hostname    string
		statusName, hostFacts string
		want                  string
	}{
		{"spec.nodeName first", "ip-10-0-1-2.ec2.internal", "vm-abc12", "old", "WIN-X", "ip-10-0-1-2.ec2.internal"},
		{"then spec.hostname, before the host is renamed", "", "vm-abc12", "", "WIN-X", "vm-abc12"},
		{"then the host's name in lower case", "", "", "old", "WIN-X", "win-x"},
		{"then the recorded name", "", "", "old", "", "old"},
	}
	for _, tc := range cases {
		wi := &wmcov1.WindowsInstance{
			Spec:   wmcov1.WindowsInstanceSpec{NodeName: tc.nodeName, Hostname: tc.hostname},
			Status: wmcov1.WindowsInstanceStatus{NodeName: tc.statusName},
		}
		NewWithT(t).Expect(DesiredNodeName(wi, tc.hostFacts)).To(Equal(tc.want), tc.name)
	}
}

func TestOperatorNodes(t *testing.T) {
	ours := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{wmcov1.LabelInstance: "a"}}}
	oursChanged := ours.DeepCopy()
	oursChanged.Labels["x"] = "y"
	other := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "b", Labels: map[string]string{"x": "y"}}}
	otherChanged := other.DeepCopy()
	otherChanged.Labels["x"] = "z"
	xChanged := func(o, n *corev1.Node) bool { return o.Labels["x"] != n.Labels["x"] }
	p := OperatorNodes(xChanged)
	for _, tc := range []struct {
		name     string
		old, cur *corev1.Node
		want     bool
	}{
		{"ours, unchanged", ours, ours, false},
		{"ours, changed", ours, oursChanged, true},
		{"other, changed", other, otherChanged, false},
		{"labelled ours", other, ours, true},
		{"no longer ours", ours, other, true},
	} {
		NewWithT(t).Expect(p.Update(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.cur})).To(Equal(tc.want), tc.name)
	}
	g := NewWithT(t)
	g.Expect(p.Create(event.CreateEvent{Object: ours})).To(BeTrue())
	g.Expect(p.Create(event.CreateEvent{Object: other})).To(BeFalse())
	g.Expect(p.Delete(event.DeleteEvent{Object: ours})).To(BeTrue())
	g.Expect(p.Delete(event.DeleteEvent{Object: other})).To(BeFalse())
}
