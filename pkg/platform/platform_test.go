package platform_test

import (
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	configv1 "github.com/openshift/api/config/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/openwmco/wmco/pkg/platform"
)

func TestLookup(t *testing.T) {
	cases := []struct {
		in        configv1.PlatformType
		known     bool
		user      string
		cloud     string
		hostname  bool
		ec2Launch bool
	}{
		{configv1.AWSPlatformType, true, "Administrator", platform.External, false, true},
		{configv1.AzurePlatformType, true, "capi", platform.External, false, false},
		{configv1.VSpherePlatformType, true, "Administrator", platform.External, true, false},
		{configv1.NonePlatformType, true, "Administrator", "", false, false},
		{"", true, "Administrator", "", false, false},
		{configv1.BareMetalPlatformType, false, "Administrator", "", false, false},
	}
	for _, c := range cases {
		t.Run(string(c.in), func(t *testing.T) {
			g := NewWithT(t)
			p, known := platform.Lookup(c.in)
			g.Expect(known).To(Equal(c.known))
			g.Expect(p.Username).To(Equal(c.user))
			g.Expect(p.KubeletCloudProvider).To(Equal(c.cloud))
			g.Expect(p.SetHostname).To(Equal(c.hostname))
			g.Expect(p.EC2Launch).To(Equal(c.ec2Launch))
			g.Expect(p.UserDataTags).To(BeTrue())
			if c.in == "" {
				g.Expect(p.Type).To(Equal(configv1.NonePlatformType))
			} else {
				g.Expect(p.Type).To(Equal(c.in))
			}
		})
	}
	g := NewWithT(t)
	g.Expect(platform.Supported()).To(Equal([]configv1.PlatformType{"AWS", "Azure", "VSphere", "None"}))
	for _, s := range platform.Supported() {
		_, known := platform.Lookup(s)
		g.Expect(known).To(BeTrue(), string(s))
	}
}

func TestMachineNodeName(t *testing.T) {
	dns := func(s string) corev1.NodeAddress { return corev1.NodeAddress{Type: corev1.NodeInternalDNS, Address: s} }
	ip := corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.1.2"}
	cases := []struct {
		name     string
		platform configv1.PlatformType
		machine  string
		addrs    []corev1.NodeAddress
		want     string
		err      string
	}{
		{"aws private DNS, lower case, no dot", configv1.AWSPlatformType, "w-1", []corev1.NodeAddress{ip, dns("IP-10-0-1-2.EC2.internal.")}, "ip-10-0-1-2.ec2.internal", ""},
		{"aws without DNS yet", configv1.AWSPlatformType, "w-1", []corev1.NodeAddress{ip}, "", "no InternalDNS address yet"},
		{"aws bad DNS", configv1.AWSPlatformType, "w-1", []corev1.NodeAddress{dns("bad_name.internal")}, "", "not a valid Node name"},
		{"azure machine name", configv1.AzurePlatformType, "winworker-abcde-x7k2p", []corev1.NodeAddress{ip}, "winworker-abcde-x7k2p", ""},
		{"vsphere fits 15", configv1.VSpherePlatformType, "winwork-a-x7k2p", nil, "winwork-a-x7k2p", ""},
		{"vsphere too long", configv1.VSpherePlatformType, "winworker-a-x7k2p", nil, "", "at most 15 characters"},
		{"vsphere dot", configv1.VSpherePlatformType, "win.a", nil, "", "Windows computer name"},
		{"none: the host's", configv1.NonePlatformType, "anything", []corev1.NodeAddress{dns("x.example.com")}, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			p, _ := platform.Lookup(c.platform)
			got, err := p.MachineNodeName(c.machine, c.addrs)
			if c.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(c.err)))
				g.Expect(errors.Is(err, platform.ErrNodeNamePending)).To(Equal(c.name == "aws without DNS yet"), "pending only while an address may still come")
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(c.want))
		})
	}
}
