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
		{"metadata address skipped", []corev1.NodeAddress{internalIP("169.254.169.254"), internalIP("fd00::7")}, "fd00::7"},
		{"link-local IPv6 skipped", []corev1.NodeAddress{internalIP("fe80::1"), dns("win.example.com")}, "win.example.com"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr, _ := machineAddress(c.addrs, []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeInternalDNS})
			NewWithT(t).Expect(addr).To(Equal(c.want))
		})
	}
}

func TestMachineAddressSaysWhyItRefusesEveryAddress(t *testing.T) {
	g := NewWithT(t)
	addr, refused := machineAddress([]corev1.NodeAddress{
		internalIP("169.254.169.254"), internalIP("fe80::1"), internalIP("224.0.0.1"),
		internalIP("0.0.0.0"), internalIP("255.255.255.255"), internalIP("::ffff:169.254.0.9"),
	}, []corev1.NodeAddressType{corev1.NodeInternalIP})
	g.Expect(addr).To(BeEmpty())
	g.Expect(refused).To(Equal([]string{
		"address 169.254.169.254 is refused: it is the cloud instance metadata address (link-local, 169.254.0.0/16); the operator never connects to one",
		"address fe80::1 is refused: it is an IPv6 link-local address (fe80::/10), reachable only on one network link; the operator never connects to one",
		"address 224.0.0.1 is refused: it is a multicast address (224.0.0.0/4), which names a group, not a host",
		"address 0.0.0.0 is refused: it is the unspecified address, which names no host",
		"address 255.255.255.255 is refused: it is the IPv4 broadcast address, which names no host",
		"address 169.254.0.9 is refused: it is a link-local address (169.254.0.0/16), where clouds serve instance metadata; the operator never connects to one",
	}))
}

// A platform that dials only InternalIP addresses (Azure) never falls back
// to a DNS name.
func TestMachineAddressKeepsToThePlatformsTypes(t *testing.T) {
	g := NewWithT(t)
	dns := corev1.NodeAddress{Type: corev1.NodeInternalDNS, Address: "win.example.com"}
	addr, _ := machineAddress([]corev1.NodeAddress{dns}, []corev1.NodeAddressType{corev1.NodeInternalIP})
	g.Expect(addr).To(BeEmpty())
	addr, _ = machineAddress([]corev1.NodeAddress{dns, internalIP("10.0.0.5")}, []corev1.NodeAddressType{corev1.NodeInternalIP})
	g.Expect(addr).To(Equal("10.0.0.5"))
}
