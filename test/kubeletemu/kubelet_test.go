package kubeletemu

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
)

func TestParseArgsCloudProvider(t *testing.T) {
	base := []string{"--config=C:\\k\\kubelet.conf", "--kubeconfig=C:\\k\\kubeconfig"}
	cases := []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{"none", nil, "", ""},
		{"external", []string{"--cloud-provider=external"}, "external", ""},
		{"external as two arguments", []string{"--cloud-provider", "external"}, "external", ""},
		{"in-tree provider", []string{"--cloud-provider=aws"}, "", `only "external"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			f, err := parseArgs(append(append([]string(nil), base...), tc.args...))
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(f.cloudProvider).To(Equal(tc.want))
		})
	}
}

func TestNodeAddresses(t *testing.T) {
	ccm := []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.1.2"}, {Type: corev1.NodeInternalDNS, Address: "ip-10-0-1-2.ec2.internal"}}
	own := []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.7"}, {Type: corev1.NodeHostName, Address: "win-x"}}
	cases := []struct {
		name          string
		cloudProvider string
		nodeIP        string
		existing      []corev1.NodeAddress
		want          []corev1.NodeAddress
	}{
		{"no cloud provider: the kubelet's own, always", "", "192.0.2.7", ccm, own},
		{"external, first status: --node-ip and the host name", "external", "192.0.2.7", nil, own},
		{"external, addresses set: left to the cloud controller manager", "external", "192.0.2.7", ccm, nil},
		{"external without --node-ip: the host name alone", "external", "", nil, own[1:]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := &kubelet{cfg: Config{Host: Host{Hostname: "WIN-X", Addresses: []string{"192.0.2.7"}}},
				flags: flags{cloudProvider: tc.cloudProvider, nodeIP: tc.nodeIP}}
			node := &corev1.Node{Status: corev1.NodeStatus{Addresses: tc.existing}}
			NewWithT(t).Expect(k.nodeAddresses(node)).To(Equal(tc.want))
		})
	}
}
