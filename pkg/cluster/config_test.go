package cluster_test

import (
	"encoding/pem"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	configv1 "github.com/openshift/api/config/v1"
	operatorv1 "github.com/openshift/api/operator/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/test/openshiftcrds"
)

// certPEM is a new self-signed CA certificate named cn.
func certPEM(t testing.TB, cn string) string {
	t.Helper()
	pemBytes, err := openshiftcrds.NewCAPEM(cn)
	if err != nil {
		t.Fatal(err)
	}
	return string(pemBytes)
}

var base = nodeconfig.ClusterFacts{
	APIServerURL: "https://flag.example.test:6443", CACertPEM: []byte("ca"), ServiceCIDR: "10.96.0.0/12",
	ClusterNetworkCIDR: "10.244.0.0/16", DNSIP: "10.96.0.10", KubernetesVersion: "v1.37.2",
}

// ovn is the configuration of an OpenShift cluster with OVN-Kubernetes and
// its hybrid overlay, as the installer and the Cluster Network Operator
// leave it.
func ovn(t testing.TB) cluster.ConfigObjects {
	return cluster.ConfigObjects{
		Infrastructure: &configv1.Infrastructure{Status: configv1.InfrastructureStatus{
			APIServerURL: "https://api.ocp.example.test:6443", APIServerInternalURL: "https://api-int.ocp.example.test:6443",
		}},
		Network: &configv1.Network{
			Spec: configv1.NetworkSpec{ClusterNetwork: []configv1.ClusterNetworkEntry{{CIDR: "10.128.0.0/14", HostPrefix: 23}}, ServiceNetwork: []string{"172.30.0.0/16"}, NetworkType: "OVNKubernetes"},
			Status: configv1.NetworkStatus{
				ClusterNetwork: []configv1.ClusterNetworkEntry{{CIDR: "10.128.0.0/14", HostPrefix: 23}, {CIDR: "fd01::/48", HostPrefix: 64}},
				ServiceNetwork: []string{"172.30.0.0/16", "fd02::/112"}, NetworkType: "OVNKubernetes",
			},
		},
		OperatorNetwork: &operatorv1.Network{Spec: operatorv1.NetworkSpec{DefaultNetwork: operatorv1.DefaultNetworkDefinition{
			Type: operatorv1.NetworkTypeOVNKubernetes,
			OVNKubernetesConfig: &operatorv1.OVNKubernetesConfig{HybridOverlayConfig: &operatorv1.HybridOverlayConfig{
				HybridClusterNetwork:   []operatorv1.ClusterNetworkEntry{{CIDR: "10.132.0.0/14", HostPrefix: 23}},
				HybridOverlayVXLANPort: ptr.To[uint32](9898),
			}},
		}}},
		Proxy: &configv1.Proxy{Status: configv1.ProxyStatus{
			HTTPProxy: "http://user:secret@proxy.example.test:3128", HTTPSProxy: "http://proxy.example.test:3128", NoProxy: ".cluster.local,172.30.0.0/16",
		}},
		DNSService:      &corev1.Service{Spec: corev1.ServiceSpec{ClusterIP: "172.30.0.10"}},
		KubeletClientCA: &corev1.ConfigMap{Data: map[string]string{cluster.CABundleKey: certPEM(t, "kubelet-signer")}},
		TrustedCARef:    cluster.ConfigMapKey{Namespace: "wmco-system", Name: cluster.TrustedCAName, Key: cluster.CABundleKey},
		TrustedCA:       &corev1.ConfigMap{Data: map[string]string{cluster.CABundleKey: certPEM(t, "proxy-ca")}},
	}
}

func TestFactsFromOVNCluster(t *testing.T) {
	g := NewWithT(t)
	in := ovn(t)
	f, problem := cluster.FactsFrom(cluster.OpenShift, base, in)
	g.Expect(problem).To(BeEmpty())
	g.Expect(f).To(Equal(nodeconfig.ClusterFacts{
		APIServerURL: "https://api-int.ocp.example.test:6443", CACertPEM: []byte("ca"),
		ServiceCIDR: "172.30.0.0/16", ClusterNetworkCIDR: "10.132.0.0/14", DNSIP: "172.30.0.10", KubernetesVersion: "v1.37.2",
		PodNetworkCIDRs: []string{"10.128.0.0/14", "fd01::/48"}, VXLANPort: 9898,
		Proxy:        nodeconfig.Proxy{HTTPProxy: "http://user:secret@proxy.example.test:3128", HTTPSProxy: "http://proxy.example.test:3128", NoProxy: ".cluster.local,172.30.0.0/16"},
		TrustedCAPEM: []byte(in.TrustedCA.Data[cluster.CABundleKey]), KubeletClientCAPEM: []byte(in.KubeletClientCA.Data[cluster.CABundleKey]),
	}))
	// base is not changed through the result.
	f.CACertPEM[0] = 'X'
	g.Expect(base.CACertPEM).To(Equal([]byte("ca")))
}

// Each case changes the OVN cluster; want changes the facts it gives, or
// problem is the sentence expected.
func TestFactsFrom(t *testing.T) {
	const noHybrid = "OVN-Kubernetes has no hybrid overlay: set spec.defaultNetwork.ovnKubernetesConfig.hybridOverlayConfig.hybridClusterNetwork in networks.operator.openshift.io/cluster (Windows nodes need it)"
	cases := []struct {
		name     string
		platform cluster.Platform
		change   func(*cluster.ConfigObjects)
		want     func(*nodeconfig.ClusterFacts)
		problem  string
	}{
		{name: "as installed"},
		{
			name: "no hybridOverlayConfig",
			change: func(in *cluster.ConfigObjects) {
				in.OperatorNetwork.Spec.DefaultNetwork.OVNKubernetesConfig.HybridOverlayConfig = nil
			},
			problem: noHybrid,
		},
		{
			name:    "no ovnKubernetesConfig",
			change:  func(in *cluster.ConfigObjects) { in.OperatorNetwork.Spec.DefaultNetwork.OVNKubernetesConfig = nil },
			problem: noHybrid,
		},
		{
			name: "empty hybridClusterNetwork",
			change: func(in *cluster.ConfigObjects) {
				in.OperatorNetwork.Spec.DefaultNetwork.OVNKubernetesConfig.HybridOverlayConfig.HybridClusterNetwork = nil
			},
			problem: noHybrid,
		},
		{name: "no operator Network", change: func(in *cluster.ConfigObjects) { in.OperatorNetwork = nil }, problem: noHybrid},
		{
			name: "VXLAN port unset",
			change: func(in *cluster.ConfigObjects) {
				in.OperatorNetwork.Spec.DefaultNetwork.OVNKubernetesConfig.HybridOverlayConfig.HybridOverlayVXLANPort = nil
			},
			want: func(f *nodeconfig.ClusterFacts) { f.VXLANPort = 0 },
		},
		{
			name: "VXLAN port out of range",
			change: func(in *cluster.ConfigObjects) {
				in.OperatorNetwork.Spec.DefaultNetwork.OVNKubernetesConfig.HybridOverlayConfig.HybridOverlayVXLANPort = ptr.To[uint32](70000)
			},
			problem: "spec.defaultNetwork.ovnKubernetesConfig.hybridOverlayConfig.hybridOverlayVXLANPort 70000 in networks.operator.openshift.io/cluster is not a port number",
		},
		{
			name:    "OpenShiftSDN",
			change:  func(in *cluster.ConfigObjects) { in.Network.Status.NetworkType = "OpenShiftSDN" },
			problem: `Network type "OpenShiftSDN" (networks.config.openshift.io/cluster) is not supported for Windows nodes: only OVNKubernetes with its hybrid overlay is`,
		},
		{
			name: "network type from the spec while the status is empty",
			change: func(in *cluster.ConfigObjects) {
				in.Network.Status = configv1.NetworkStatus{}
			},
			want: func(f *nodeconfig.ClusterFacts) { f.PodNetworkCIDRs = []string{"10.128.0.0/14"} },
		},
		{
			name: "no network type at all",
			change: func(in *cluster.ConfigObjects) {
				in.Network.Status.NetworkType, in.Network.Spec.NetworkType = "", ""
			},
			problem: "The cluster's network type is not known yet: networks.config.openshift.io/cluster has no networkType",
		},
		{name: "no Network config", change: func(in *cluster.ConfigObjects) { in.Network = nil }, problem: "The cluster's network is unknown: networks.config.openshift.io/cluster does not exist"},
		{
			name: "no Infrastructure, no DNS Service, no Proxy, no kubelet client CA: base",
			change: func(in *cluster.ConfigObjects) {
				in.Infrastructure, in.DNSService, in.Proxy, in.KubeletClientCA = nil, nil, nil, nil
			},
			want: func(f *nodeconfig.ClusterFacts) {
				f.APIServerURL, f.DNSIP, f.Proxy, f.KubeletClientCAPEM = base.APIServerURL, base.DNSIP, nodeconfig.Proxy{}, nil
			},
		},
		{
			name:   "headless DNS Service is no address",
			change: func(in *cluster.ConfigObjects) { in.DNSService.Spec.ClusterIP = corev1.ClusterIPNone },
			want:   func(f *nodeconfig.ClusterFacts) { f.DNSIP = base.DNSIP },
		},
		{
			name:   "trusted-ca not injected yet: nothing to import",
			change: func(in *cluster.ConfigObjects) { in.TrustedCA.Data = nil },
			want:   func(f *nodeconfig.ClusterFacts) { f.TrustedCAPEM = nil },
		},
		{
			name:   "trusted-ca not created yet",
			change: func(in *cluster.ConfigObjects) { in.TrustedCA = nil },
			want:   func(f *nodeconfig.ClusterFacts) { f.TrustedCAPEM = nil },
		},
		{
			name: "trusted-ca holds a private key",
			change: func(in *cluster.ConfigObjects) {
				in.TrustedCA.Data[cluster.CABundleKey] += "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"
			},
			problem: `ConfigMap wmco-system/trusted-ca key ca-bundle.crt is not a CA bundle: PEM block 2 is a "EC PRIVATE KEY", not a CERTIFICATE`,
		},
		{
			name:    "kubelet client CA without its key",
			change:  func(in *cluster.ConfigObjects) { in.KubeletClientCA.Data = map[string]string{"other": "x"} },
			problem: "ConfigMap openshift-kube-apiserver-operator/kube-apiserver-to-kubelet-client-ca key ca-bundle.crt is missing",
		},
		{
			name:    "kubelet client CA not PEM",
			change:  func(in *cluster.ConfigObjects) { in.KubeletClientCA.Data[cluster.CABundleKey] = "not a certificate" },
			problem: "ConfigMap openshift-kube-apiserver-operator/kube-apiserver-to-kubelet-client-ca key ca-bundle.crt is not a CA bundle: holds no PEM certificate",
		},
		{
			name:     "plain Kubernetes: OpenShift's objects are not read",
			platform: cluster.Kubernetes,
			change:   func(in *cluster.ConfigObjects) { in.TrustedCARef = cluster.ConfigMapKey{} },
			want:     func(f *nodeconfig.ClusterFacts) { *f = base },
		},
		{
			name:     "plain Kubernetes: the trusted CA the WindowsNodeConfig names",
			platform: cluster.Kubernetes,
			change: func(in *cluster.ConfigObjects) {
				in.TrustedCARef = cluster.ConfigMapKey{Namespace: "wmco-system", Name: "corp-ca", Key: "bundle.pem"}
				in.TrustedCA.Data = map[string]string{"bundle.pem": in.TrustedCA.Data[cluster.CABundleKey]}
			},
			want: func(f *nodeconfig.ClusterFacts) {
				ca := f.TrustedCAPEM
				*f = base
				f.TrustedCAPEM = ca
			},
		},
		{
			name:     "plain Kubernetes: the named ConfigMap is missing",
			platform: cluster.Kubernetes,
			change: func(in *cluster.ConfigObjects) {
				in.TrustedCARef = cluster.ConfigMapKey{Namespace: "wmco-system", Name: "corp-ca", Key: "bundle.pem"}
				in.TrustedCA = nil
			},
			problem: "ConfigMap wmco-system/corp-ca key bundle.pem does not exist",
		},
		{
			name:     "plain Kubernetes: the named key is missing",
			platform: cluster.Kubernetes,
			change: func(in *cluster.ConfigObjects) {
				in.TrustedCARef = cluster.ConfigMapKey{Namespace: "wmco-system", Name: "corp-ca", Key: "bundle.pem"}
			},
			problem: "ConfigMap wmco-system/corp-ca key bundle.pem is missing",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			in := ovn(t)
			wantFacts, _ := cluster.FactsFrom(cluster.OpenShift, base, in)
			if tc.change != nil {
				tc.change(&in)
			}
			if tc.want != nil {
				tc.want(&wantFacts)
			}
			platform := tc.platform
			if platform == "" {
				platform = cluster.OpenShift
			}
			f, problem := cluster.FactsFrom(platform, base, in)
			g.Expect(problem).To(Equal(tc.problem))
			if tc.problem == "" {
				g.Expect(f).To(Equal(wantFacts))
			}
		})
	}
}

func TestImageMirrors(t *testing.T) {
	idms := func(name string, e ...configv1.ImageDigestMirrors) configv1.ImageDigestMirrorSet {
		return configv1.ImageDigestMirrorSet{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: configv1.ImageDigestMirrorSetSpec{ImageDigestMirrors: e}}
	}
	itms := func(name string, e ...configv1.ImageTagMirrors) configv1.ImageTagMirrorSet {
		return configv1.ImageTagMirrorSet{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: configv1.ImageTagMirrorSetSpec{ImageTagMirrors: e}}
	}
	g := NewWithT(t)
	g.Expect(cluster.ImageMirrors(nil, nil)).To(BeNil())
	got := cluster.ImageMirrors([]configv1.ImageDigestMirrorSet{
		// Listed out of order: "a" is taken first.
		idms("b", configv1.ImageDigestMirrors{Source: "quay.io/ocp", Mirrors: []configv1.ImageMirror{"mirror-2.example.test/ocp", "mirror-1.example.test/ocp"}, MirrorSourcePolicy: configv1.NeverContactSource}),
		idms("a",
			configv1.ImageDigestMirrors{Source: "quay.io/ocp", Mirrors: []configv1.ImageMirror{"mirror-1.example.test/ocp"}, MirrorSourcePolicy: configv1.AllowContactingSource},
			configv1.ImageDigestMirrors{Source: "registry.example.test", Mirrors: []configv1.ImageMirror{"mirror-1.example.test"}},
		),
	}, []configv1.ImageTagMirrorSet{
		itms("t", configv1.ImageTagMirrors{Source: "quay.io/ocp", Mirrors: []configv1.ImageMirror{"tags.example.test/ocp"}}),
		itms("u", configv1.ImageTagMirrors{Source: "docker.io", Mirrors: []configv1.ImageMirror{"hub.example.test"}}, configv1.ImageTagMirrors{Source: ""}),
	})
	g.Expect(got).To(Equal([]nodeconfig.ImageMirror{
		{Source: "docker.io", Mirrors: []string{"hub.example.test"}, Resolve: true},
		{Source: "quay.io/ocp", Mirrors: []string{"mirror-1.example.test/ocp", "mirror-2.example.test/ocp"}, NeverContactSource: true},
		{Source: "quay.io/ocp", Mirrors: []string{"tags.example.test/ocp"}, Resolve: true},
		{Source: "registry.example.test", Mirrors: []string{"mirror-1.example.test"}},
	}))
}

func TestValidateCABundle(t *testing.T) {
	one := certPEM(t, "one")
	two := certPEM(t, "two")
	cases := []struct {
		name, data, err string
	}{
		{"one", one, ""},
		{"two with comments", "# Root one\n" + one + "\n# Root two\n" + two, ""},
		{"empty", "", "holds no PEM certificate"},
		{"text", "hello", "holds no PEM certificate"},
		{"private key", strings.Replace(one, "CERTIFICATE", "PRIVATE KEY", 2), `PEM block 1 is a "PRIVATE KEY", not a CERTIFICATE`},
		{"broken second block", one + "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n", "a PEM block after certificate 1 is malformed"},
	}
	for _, tc := range cases {
		err := cluster.ValidateCABundle([]byte(tc.data))
		if tc.err == "" {
			NewWithT(t).Expect(err).NotTo(HaveOccurred(), tc.name)
		} else {
			NewWithT(t).Expect(err).To(MatchError(tc.err), tc.name)
		}
	}
}

func TestFactsChanges(t *testing.T) {
	g := NewWithT(t)
	in := ovn(t)
	a, _ := cluster.FactsFrom(cluster.OpenShift, base, in)
	g.Expect(cluster.FactsChanges(a, a)).To(BeEmpty())
	g.Expect(cluster.EqualFacts(a, cluster.CloneFacts(a))).To(BeTrue())
	b := cluster.CloneFacts(a)
	b.Proxy.HTTPProxy = "http://other:pass@proxy.example.test:3128"
	b.TrustedCAPEM = append(b.TrustedCAPEM, []byte(certPEM(t, "new"))...)
	b.VXLANPort = 4789
	b.ImageMirrors = []nodeconfig.ImageMirror{{Source: "quay.io", Mirrors: []string{"m.example.test"}}}
	changes := cluster.FactsChanges(a, b)
	g.Expect(changes).To(ConsistOf("vxlanPort=4789", "proxy changed", HavePrefix("trustedCA changed ("), "imageMirrors changed (1 sources)"))
	g.Expect(strings.Join(changes, " ")).NotTo(ContainSubstring("pass"), "proxy credentials are never told")
	g.Expect(strings.Join(changes, " ")).NotTo(ContainSubstring("BEGIN"))
	g.Expect(cluster.EqualFacts(a, b)).To(BeFalse())
	// nil and empty alike.
	c := cluster.CloneFacts(a)
	c.PodNetworkCIDRs = []string{}
	a.PodNetworkCIDRs = nil
	g.Expect(cluster.EqualFacts(a, c)).To(BeTrue())
}

// FuzzValidateCABundle: never panics; whatever it accepts holds only
// CERTIFICATE blocks, at least one.
func FuzzValidateCABundle(f *testing.F) {
	f.Add([]byte(certPEM(f, "seed")))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n-----BEGIN RSA PRIVATE KEY-----\nAA==\n-----END RSA PRIVATE KEY-----\n"))
	f.Add([]byte("# comment\n-----BEGIN CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := cluster.ValidateCABundle(data)
		if err != nil {
			return
		}
		n := 0
		for rest := data; ; {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				t.Fatalf("accepted a %q block", b.Type)
			}
			n++
		}
		if n == 0 {
			t.Fatal("accepted data without a certificate")
		}
	})
}

// FuzzImageMirrors: never panics; the result is sorted, one entry per
// source and kind, each mirror once, and every non-empty source and
// mirror of the input is in it.
func FuzzImageMirrors(f *testing.F) {
	f.Add("quay.io/ocp", "m1.example.test", "m2.example.test", "b", "a", true, false)
	f.Add("", "", "", "", "", false, true)
	f.Fuzz(func(t *testing.T, source, m1, m2, name1, name2 string, never, tag bool) {
		policy := configv1.AllowContactingSource
		if never {
			policy = configv1.NeverContactSource
		}
		d := []configv1.ImageDigestMirrorSet{
			{ObjectMeta: metav1.ObjectMeta{Name: name1}, Spec: configv1.ImageDigestMirrorSetSpec{ImageDigestMirrors: []configv1.ImageDigestMirrors{{Source: source, Mirrors: []configv1.ImageMirror{configv1.ImageMirror(m1), configv1.ImageMirror(m2)}, MirrorSourcePolicy: policy}}}},
			{ObjectMeta: metav1.ObjectMeta{Name: name2}, Spec: configv1.ImageDigestMirrorSetSpec{ImageDigestMirrors: []configv1.ImageDigestMirrors{{Source: source, Mirrors: []configv1.ImageMirror{configv1.ImageMirror(m2)}}}}},
		}
		var tg []configv1.ImageTagMirrorSet
		if tag {
			tg = []configv1.ImageTagMirrorSet{{Spec: configv1.ImageTagMirrorSetSpec{ImageTagMirrors: []configv1.ImageTagMirrors{{Source: source, Mirrors: []configv1.ImageMirror{configv1.ImageMirror(m1)}}}}}}
		}
		got := cluster.ImageMirrors(d, tg)
		if source == "" {
			if len(got) != 0 {
				t.Fatalf("an empty source gave %v", got)
			}
			return
		}
		want := 1
		if tag {
			want = 2
		}
		if len(got) != want || got[0].Source != source || got[0].Resolve || got[0].NeverContactSource != never {
			t.Fatalf("got %+v", got)
		}
		seen := map[string]bool{}
		for _, m := range got[0].Mirrors {
			if seen[m] || m == "" {
				t.Fatalf("mirror %q twice or empty in %v", m, got[0].Mirrors)
			}
			seen[m] = true
		}
		for _, m := range []string{m1, m2} {
			if m != "" && !seen[m] {
				t.Fatalf("mirror %q lost: %v", m, got[0].Mirrors)
			}
		}
	})
}
