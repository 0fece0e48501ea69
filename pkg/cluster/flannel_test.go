package cluster_test

import (
	"net/netip"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/bounded"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/nodeconfig"
)

// kubeFlannelNetConf is net-conf.json of flannel's kube-flannel.yml.
const kubeFlannelNetConf = `{
  "Network": "10.244.0.0/16",
  "EnableNFTables": false,
  "Backend": {
    "Type": "vxlan"
  }
}
`

// windowsNetConf is net-conf.json as sig-windows-tools configures it for
// Windows nodes.
const windowsNetConf = `{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "VNI": 4096, "Port": 4789}}`

func TestParseFlannelNetConf(t *testing.T) {
	long := strings.Repeat("x", 200)
	cases := []struct {
		name string
		in   string
		want nodeconfig.FlannelFacts
		err  string
	}{
		{name: "kube-flannel.yml", in: kubeFlannelNetConf, want: nodeconfig.FlannelFacts{Network: "10.244.0.0/16", Backend: "vxlan"}},
		{name: "sig-windows-tools", in: windowsNetConf, want: nodeconfig.FlannelFacts{Network: "10.244.0.0/16", Backend: "vxlan", VNI: 4096, Port: 4789}},
		{name: "host-gw ignores VXLAN settings", in: `{"Network":"10.1.0.0/16","Backend":{"Type":"host-gw","VNI":"x"}}`, want: nodeconfig.FlannelFacts{Network: "10.1.0.0/16", Backend: "host-gw"}},
		{name: "keys match case-insensitively, as for flanneld", in: `{"network":"10.1.0.0/16","backend":{"type":"vxlan","vni":4097}}`, want: nodeconfig.FlannelFacts{Network: "10.1.0.0/16", Backend: "vxlan", VNI: 4097}},
		{name: "Network is masked", in: `{"Network":"10.244.7.1/16","Backend":{"Type":"vxlan"}}`, want: nodeconfig.FlannelFacts{Network: "10.244.0.0/16", Backend: "vxlan"}},
		{name: "Port 0 is unset", in: `{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","Port":0,"VNI":null}}`, want: nodeconfig.FlannelFacts{Network: "10.1.0.0/16", Backend: "vxlan"}},
		{name: "other keys are flanneld's", in: `{"Network":"10.1.0.0/16","SubnetLen":26,"EnableIPv6":true,"IPv6Network":"fd00::/56","Backend":{"Type":"vxlan","MacPrefix":"0E-2A"}}`, want: nodeconfig.FlannelFacts{Network: "10.1.0.0/16", Backend: "vxlan"}},

		{name: "empty", in: "", err: `"" is not a JSON object`},
		{name: "array", in: `[1]`, err: `"[1]" is not a JSON object`},
		{name: "broken JSON", in: `{"Network": "10.1.0.0/16",`, err: "not valid JSON"},
		{name: "no Network", in: `{"Backend":{"Type":"vxlan"}}`, err: "Network is missing (flannel on Windows needs an IPv4 pod network)"},
		{name: "Network not a string", in: `{"Network":10}`, err: `Network "10" is not a string`},
		{name: "Network not a CIDR", in: `{"Network":"10.1.0.0"}`, err: `Network "10.1.0.0" is not an IPv4 CIDR`},
		{name: "Network IPv6", in: `{"Network":"fd00::/48"}`, err: `Network "fd00::/48" is not an IPv4 CIDR`},
		{name: "long Network is quoted in part", in: `{"Network":"` + long + `"}`, err: `Network "` + long[:bounded.MaxQuoted] + `"... (200 bytes) is not an IPv4 CIDR`},
		{name: "no Backend: udp", in: `{"Network":"10.1.0.0/16"}`, err: "Backend is missing (flannel then uses udp; Windows nodes need vxlan or host-gw)"},
		{name: "Backend not an object", in: `{"Network":"10.1.0.0/16","Backend":"vxlan"}`, err: `Backend: "\"vxlan\"" is not a JSON object`},
		{name: "no Backend.Type", in: `{"Network":"10.1.0.0/16","Backend":{}}`, err: `Backend.Type "" is not a string`},
		{name: "Backend.Type not a string", in: `{"Network":"10.1.0.0/16","Backend":{"Type":1}}`, err: `Backend.Type "1" is not a string`},
		{name: "wireguard", in: `{"Network":"10.1.0.0/16","Backend":{"Type":"wireguard"}}`, err: `Backend.Type "wireguard" is not supported for Windows nodes (vxlan or host-gw)`},
		{name: "long type is quoted in part", in: `{"Network":"10.1.0.0/16","Backend":{"Type":"` + long + `"}}`, err: `Backend.Type "` + long[:bounded.MaxQuoted] + `"... (200 bytes) is not supported`},
		{name: "VNI not an integer", in: `{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","VNI":4096.5}}`, err: `Backend.VNI "4096.5" is not an integer`},
		{name: "VNI a string", in: `{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","VNI":"4096"}}`, err: `Backend.VNI "\"4096\"" is not an integer`},
		{name: "VNI 0", in: `{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","VNI":0}}`, err: "Backend.VNI 0 is not from 1 to 16777215"},
		{name: "VNI too large", in: `{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","VNI":16777216}}`, err: "Backend.VNI 16777216 is not from 1 to 16777215"},
		{name: "VNI beyond int32", in: `{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","VNI":99999999999999999999}}`, err: `Backend.VNI "99999999999999999999" is not an integer`},
		{name: "Port too large", in: `{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","Port":65536}}`, err: "Backend.Port 65536 is not from 0 to 65535"},
		{name: "Port negative", in: `{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","Port":-1}}`, err: "Backend.Port -1 is not from 0 to 65535"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := cluster.ParseFlannelNetConf([]byte(tc.in))
			if tc.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

// FuzzParseFlannelNetConf: never panics; an error quotes at most a few
// dozen bytes of the input; what it accepts is an IPv4 network, masked,
// with a backend Windows has and VXLAN settings in range.
func FuzzParseFlannelNetConf(f *testing.F) {
	for _, s := range []string{kubeFlannelNetConf, windowsNetConf, `{"Network":"10.1.0.0/16","Backend":{"Type":"host-gw"}}`, `{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","VNI":1e3}}`, `{`, `null`, `{"Network":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := cluster.ParseFlannelNetConf(data)
		if err != nil {
			// The message's own words are under 100 bytes; the quoted
			// input is bounded by pkg/bounded (4*MaxQuoted+30 bytes once
			// escaped: testdata's a3c11a5b26c0dffe, 64 bytes of \xdb,
			// makes 310 bytes in all).
			if len(err.Error()) > 100+4*bounded.MaxQuoted+30 {
				t.Fatalf("error of %d bytes: %v", len(err.Error()), err)
			}
			return
		}
		p, perr := netip.ParsePrefix(got.Network)
		if perr != nil || !p.Addr().Is4() || p.Masked() != p {
			t.Fatalf("accepted Network %q", got.Network)
		}
		switch got.Backend {
		case nodeconfig.FlannelBackendTypeVXLAN:
			if got.VNI < 0 || got.VNI > 1<<24-1 || got.Port < 0 || got.Port > 65535 {
				t.Fatalf("accepted VNI %d port %d", got.VNI, got.Port)
			}
		case nodeconfig.FlannelBackendTypeHostGW:
			if got.VNI != 0 || got.Port != 0 {
				t.Fatalf("host-gw with VNI %d port %d", got.VNI, got.Port)
			}
		default:
			t.Fatalf("accepted backend %q", got.Backend)
		}
		if got.Source != "" {
			t.Fatalf("a Source %q from data alone", got.Source)
		}
	})
}

func flannelConfigMap(ns, netConf string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: cluster.FlannelConfigMapName},
		Data:       map[string]string{cluster.FlannelNetConfKey: netConf, "cni-conf.json": "{}"},
	}
}

func TestFactsFromPlainKubernetesNetwork(t *testing.T) {
	// flags is what the operator is told when no network flag is set.
	flags := nodeconfig.ClusterFacts{APIServerURL: base.APIServerURL, CACertPEM: base.CACertPEM, DNSIP: base.DNSIP, KubernetesVersion: base.KubernetesVersion}
	serviceCIDR := &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: cluster.ServiceCIDRName}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"fd00:10:96::/112", "10.0.0.0/24"}}}
	windowsFlannel := nodeconfig.FlannelFacts{Source: "kube-flannel/kube-flannel-cfg", Network: "10.244.0.0/16", Backend: "vxlan", VNI: 4096, Port: 4789}
	cases := []struct {
		name    string
		base    nodeconfig.ClusterFacts
		in      cluster.ConfigObjects
		want    func(*nodeconfig.ClusterFacts)
		problem string
	}{
		{
			name: "nothing to read: the default service CIDR",
			base: flags,
			want: func(f *nodeconfig.ClusterFacts) { f.ServiceCIDR = cluster.DefaultServiceCIDR },
		},
		{
			name: "kube-flannel and the ServiceCIDR (its IPv4 CIDR)",
			base: flags,
			in:   cluster.ConfigObjects{FlannelConfig: flannelConfigMap("kube-flannel", windowsNetConf), ServiceCIDR: serviceCIDR, NetworkType: wmcov1.NetworkFlannel},
			want: func(f *nodeconfig.ClusterFacts) {
				f.ServiceCIDR, f.ClusterNetworkCIDR, f.Flannel = "10.0.0.0/24", "10.244.0.0/16", windowsFlannel
			},
		},
		{
			name: "flags stand over what is read",
			base: base,
			in:   cluster.ConfigObjects{FlannelConfig: flannelConfigMap("kube-flannel", windowsNetConf), ServiceCIDR: serviceCIDR, NetworkType: wmcov1.NetworkFlannel},
			want: func(f *nodeconfig.ClusterFacts) { f.Flannel = windowsFlannel },
		},
		{
			name: "an IPv6-only ServiceCIDR",
			base: flags,
			in:   cluster.ConfigObjects{ServiceCIDR: &networkingv1.ServiceCIDR{Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"fd00::/112"}}}},
			want: func(f *nodeconfig.ClusterFacts) { f.ServiceCIDR = "fd00::/112" },
		},
		{
			name:    "net-conf.json unreadable with network type Flannel: a problem naming the ConfigMap and the field",
			base:    flags,
			in:      cluster.ConfigObjects{FlannelConfig: flannelConfigMap("kube-system", `{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}`), NetworkType: wmcov1.NetworkFlannel},
			problem: `ConfigMap kube-system/kube-flannel-cfg: net-conf.json Backend.Type "udp" is not supported for Windows nodes (vxlan or host-gw)`,
		},
		{
			name:    "net-conf.json missing with network type Flannel",
			base:    flags,
			in:      cluster.ConfigObjects{FlannelConfig: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-flannel", Name: cluster.FlannelConfigMapName}}, NetworkType: wmcov1.NetworkFlannel},
			problem: "ConfigMap kube-flannel/kube-flannel-cfg has no key net-conf.json",
		},
		{
			name: "net-conf.json unreadable with another network type: ignored",
			base: flags,
			in:   cluster.ConfigObjects{FlannelConfig: flannelConfigMap("kube-system", `{"Network":"10.244.0.0/16"}`), NetworkType: wmcov1.NetworkNone},
			want: func(f *nodeconfig.ClusterFacts) { f.ServiceCIDR = cluster.DefaultServiceCIDR },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			f, problem := cluster.FactsFrom(cluster.Kubernetes, tc.base, tc.in)
			g.Expect(problem).To(Equal(tc.problem))
			if tc.problem != "" {
				return
			}
			want := cluster.CloneFacts(tc.base)
			if tc.want != nil {
				tc.want(&want)
			}
			g.Expect(f).To(Equal(want))
		})
	}
}

// OpenShift's facts never come from kube-flannel or the ServiceCIDR.
func TestFactsFromOpenShiftIgnoresPlainKubernetesObjects(t *testing.T) {
	g := NewWithT(t)
	in := ovn(t)
	want, _ := cluster.FactsFrom(cluster.OpenShift, base, in)
	in.FlannelConfig = flannelConfigMap("kube-flannel", windowsNetConf)
	in.ServiceCIDR = &networkingv1.ServiceCIDR{Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.0.0.0/24"}}}
	in.NetworkType = wmcov1.NetworkFlannel
	f, problem := cluster.FactsFrom(cluster.OpenShift, base, in)
	g.Expect(problem).To(BeEmpty())
	g.Expect(f).To(Equal(want))
	g.Expect(f.Flannel).To(BeZero())
}

func TestFactsChangesFlannel(t *testing.T) {
	g := NewWithT(t)
	a := cluster.CloneFacts(base)
	b := cluster.CloneFacts(base)
	b.Flannel = nodeconfig.FlannelFacts{Source: "kube-flannel/kube-flannel-cfg", Network: "10.244.0.0/16", Backend: "vxlan", VNI: 4096}
	g.Expect(cluster.FactsChanges(a, b)).To(ConsistOf(`flannel={source:"kube-flannel/kube-flannel-cfg" network:"10.244.0.0/16" backend:"vxlan" vni:4096 port:0}`))
	g.Expect(cluster.EqualFacts(a, b)).To(BeFalse())
}
