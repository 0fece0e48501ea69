package inventory

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
)

func internalIP(ip string) corev1.NodeAddress {
	return corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip}
}

func TestMachineAddress(t *testing.T) {
	dns := func(s string) corev1.NodeAddress { return corev1.NodeAddress{Type: corev1.NodeInternalDNS, Address: s} }
	ext := corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.9"}
	cases := []struct {
		name  string
		addrs []corev1.NodeAddress
		want  string
	}{
		{"none", nil, ""},
		{"external only", []corev1.NodeAddress{ext}, ""},
		{"IPv4", []corev1.NodeAddress{ext, internalIP("10.0.0.5")}, "10.0.0.5"},
		{"IPv4 preferred to IPv6", []corev1.NodeAddress{internalIP("fd00::5"), internalIP("10.0.0.5")}, "10.0.0.5"},
		{"IPv6 canonical", []corev1.NodeAddress{internalIP("FD00:0::5")}, "fd00::5"},
		{"IPv4-mapped IPv6 is IPv4", []corev1.NodeAddress{internalIP("::ffff:10.0.0.6")}, "10.0.0.6"},
		{"IP preferred to DNS", []corev1.NodeAddress{dns("win.example.com"), internalIP("fd00::5")}, "fd00::5"},
		{"DNS fallback, lower case", []corev1.NodeAddress{dns("Win-1.Example.COM.")}, "win-1.example.com"},
		{"bad entries skipped", []corev1.NodeAddress{internalIP("not-an-ip"), internalIP("0.0.0.0"), dns("bad_name"), dns("win.example.com")}, "win.example.com"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			NewWithT(t).Expect(machineAddress(c.addrs)).To(Equal(c.want))
		})
	}
}
