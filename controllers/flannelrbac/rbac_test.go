package flannelrbac_test

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/flannelrbac"
)

// Only a Node labelled with an instance and named as that instance's
// status.nodeName is the operator's to bind.
func TestManagedNodes(t *testing.T) {
	wi := func(name, node string) wmcov1.WindowsInstance {
		return wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: wmcov1.WindowsInstanceStatus{NodeName: node}}
	}
	node := func(name, instance string) corev1.Node {
		n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if instance != "" {
			n.Labels = map[string]string{wmcov1.LabelInstance: instance}
		}
		return n
	}
	cases := []struct {
		name      string
		instances []wmcov1.WindowsInstance
		nodes     []corev1.Node
		want      []string
	}{
		{name: "none"},
		{name: "joined", instances: []wmcov1.WindowsInstance{wi("a", "node-a"), wi("b", "node-b")},
			nodes: []corev1.Node{node("node-b", "b"), node("node-a", "a")}, want: []string{"node-a", "node-b"}},
		{name: "not joined yet", instances: []wmcov1.WindowsInstance{wi("a", "node-a")}},
		{name: "no node name recorded", instances: []wmcov1.WindowsInstance{wi("a", "")}, nodes: []corev1.Node{node("node-a", "a")}},
		{name: "a node that labels itself", instances: []wmcov1.WindowsInstance{wi("a", "node-a")},
			nodes: []corev1.Node{node("rogue", "a"), node("node-a", "a")}, want: []string{"node-a"}},
		{name: "the right name without the label", instances: []wmcov1.WindowsInstance{wi("a", "node-a")},
			nodes: []corev1.Node{node("node-a", "")}},
		{name: "another instance's label", instances: []wmcov1.WindowsInstance{wi("a", "node-a"), wi("b", "node-b")},
			nodes: []corev1.Node{node("node-a", "b")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(flannelrbac.ManagedNodes(tc.instances, tc.nodes)).To(Equal(tc.want))
		})
	}
	NewWithT(t).Expect(flannelrbac.Subjects([]string{"node-a"})).To(Equal([]rbacv1.Subject{
		{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "system:node:node-a"},
	}))
}
