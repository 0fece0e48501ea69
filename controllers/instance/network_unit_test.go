package instance

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/openwmco/wmco/pkg/cluster"
)

// The host's pod subnet comes from OVN-Kubernetes' annotation; only on
// plain Kubernetes may node IPAM's podCIDR stand in for it.
func TestHostSubnet(t *testing.T) {
	node := func(annotation, podCIDR string) *corev1.Node {
		n := &corev1.Node{Spec: corev1.NodeSpec{PodCIDR: podCIDR}}
		if annotation != "" {
			n.ObjectMeta = metav1.ObjectMeta{Annotations: map[string]string{HybridOverlaySubnetAnnotation: annotation}}
		}
		return n
	}
	cases := []struct {
		name     string
		node     *corev1.Node
		platform cluster.Platform
		want     string
	}{
		{"annotation on OpenShift", node("10.132.0.0/23", "10.132.4.0/24"), cluster.OpenShift, "10.132.0.0/23"},
		{"podCIDR alone on OpenShift", node("", "10.132.4.0/24"), cluster.OpenShift, ""},
		{"annotation on Kubernetes", node("10.132.0.0/23", "10.132.4.0/24"), cluster.Kubernetes, "10.132.0.0/23"},
		{"podCIDR alone on Kubernetes", node("", "10.132.4.0/24"), cluster.Kubernetes, "10.132.4.0/24"},
		{"nothing yet", node("", ""), cluster.Kubernetes, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := hostSubnet(c.node, c.platform); got != c.want {
				t.Errorf("hostSubnet = %q, want %q", got, c.want)
			}
		})
	}
}
