package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/test/localcluster"
)

var k8s client.Client

func TestMain(m *testing.M) {
	c, err := localcluster.Start(context.Background(), localcluster.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start local control plane:", err)
		os.Exit(1)
	}
	code := func() int {
		defer func() { _ = c.Stop() }()
		if err := localcluster.InstallCRDs(context.Background(), c.Config, "config/crd/bases"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		scheme := runtime.NewScheme()
		if err := wmcov1.AddToScheme(scheme); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		k8s, err = client.New(c.Config, client.Options{Scheme: scheme})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func instance(name string, mutate func(*wmcov1.WindowsInstanceSpec)) *wmcov1.WindowsInstance {
	wi := &wmcov1.WindowsInstance{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       wmcov1.WindowsInstanceSpec{Address: "10.1.42.1", Username: "Administrator"},
	}
	if mutate != nil {
		mutate(&wi.Spec)
	}
	return wi
}

func TestWindowsInstanceRoundTripAndDefaults(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	wi := instance("round-trip", func(s *wmcov1.WindowsInstanceSpec) {
		s.HostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
		s.NodeName = "win-1"
	})
	g.Expect(k8s.Create(ctx, wi)).To(Succeed())

	got := &wmcov1.WindowsInstance{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "round-trip"}, got)).To(Succeed())
	g.Expect(got.Spec.Address).To(Equal("10.1.42.1"))
	g.Expect(got.Spec.Port).To(Equal(int32(22)), "port defaults to 22")
	g.Expect(got.Spec.CredentialsSecretRef).To(Equal(wmcov1.SecretKeyReference{
		Name: wmcov1.DefaultCredentialsSecretName, Key: wmcov1.DefaultCredentialsSecretKey,
	}))
	g.Expect(got.Spec.HostKey).To(Equal(wi.Spec.HostKey))
	g.Expect(got.Spec.NodeName).To(Equal("win-1"))

	got.Status = wmcov1.WindowsInstanceStatus{
		Phase: wmcov1.PhaseReady, NodeName: "win-1", PayloadVersion: "1.2.3",
		Host: wmcov1.HostFacts{Hostname: "WIN-1", OSBuild: 20348, Addresses: []string{"10.1.42.1"}},
		Conditions: []metav1.Condition{{
			Type: wmcov1.ConditionReady, Status: metav1.ConditionTrue, Reason: "NodeReady",
			Message: "node is Ready", LastTransitionTime: metav1.Now(),
		}},
	}
	g.Expect(k8s.Status().Update(ctx, got)).To(Succeed())
	again := &wmcov1.WindowsInstance{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "round-trip"}, again)).To(Succeed())
	g.Expect(again.Status.Phase).To(Equal(wmcov1.PhaseReady))
	g.Expect(again.Status.Host.OSBuild).To(Equal(int32(20348)))
	g.Expect(again.Status.Conditions).To(HaveLen(1))
}

func TestWindowsInstanceAcceptsAddressForms(t *testing.T) {
	for i, addr := range []string{
		"10.1.42.1", "fd00::42", "win-1.example.com", "WIN-2.Example.COM", "localhost",
		// Loopback stays allowed (simulated hosts listen there), and the
		// neighbours of the refused ranges are ordinary addresses.
		"127.0.0.1", "::1", "169.253.255.255", "169.255.0.1", "223.255.255.255", "240.0.0.1",
		"255.255.255.254", "fec0::1", "fe00::1",
		// A name is judged by what it resolves to, when the operator dials.
		"169.254.169.254.nip.io",
	} {
		t.Run(addr, func(t *testing.T) {
			g := NewWithT(t)
			wi := instance(fmt.Sprintf("addr-%d", i), func(s *wmcov1.WindowsInstanceSpec) { s.Address = addr })
			g.Expect(k8s.Create(t.Context(), wi)).To(Succeed())
		})
	}
}

func TestWindowsInstanceRejectsBadSpecs(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*wmcov1.WindowsInstanceSpec)
		want   []string // substrings of the API server's message
	}{
		{"empty address", func(s *wmcov1.WindowsInstanceSpec) { s.Address = "" },
			[]string{"spec.address", "at least 1 chars long"}},
		{"address with a space", func(s *wmcov1.WindowsInstanceSpec) { s.Address = "10.1.42.1 && calc" },
			[]string{"spec.address", "address must be an IPv4 address, an IPv6 address or a DNS name"}},
		{"address with a port", func(s *wmcov1.WindowsInstanceSpec) { s.Address = "10.1.42.1:22" },
			[]string{"spec.address", "must be an IPv4 address, an IPv6 address or a DNS name"}},
		{"port 70000", func(s *wmcov1.WindowsInstanceSpec) { s.Port = 70000 },
			[]string{"spec.port", "should be less than or equal to 65535"}},
		{"empty username", func(s *wmcov1.WindowsInstanceSpec) { s.Username = "" },
			[]string{"spec.username", "at least 1 chars long"}},
		{"username with shell characters", func(s *wmcov1.WindowsInstanceSpec) { s.Username = "admin;calc" },
			[]string{"spec.username", "username must not contain"}},
		{"malformed host key", func(s *wmcov1.WindowsInstanceSpec) { s.HostKey = "not a key" },
			[]string{"spec.hostKey", "hostKey must be"}},
		{"upper-case node name", func(s *wmcov1.WindowsInstanceSpec) { s.NodeName = "Win-1" },
			[]string{"spec.nodeName", "lower-case RFC 1123"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := k8s.Create(t.Context(), instance(fmt.Sprintf("bad-%d", i), tc.mutate))
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
			for _, w := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
		})
	}
}

// Addresses the operator never connects to are refused by the API server,
// each with a message saying why.
func TestWindowsInstanceRejectsAddressesTheOperatorNeverConnectsTo(t *testing.T) {
	const (
		linkLocal   = "address must not be link-local (169.254.0.0/16, where clouds serve instance metadata at 169.254.169.254, or fe80::/10): the operator never connects to one"
		multicast   = "address must not be multicast (224.0.0.0/4 or ff00::/8): it names a group, not a host"
		unspecified = "address must not be the unspecified address (0.0.0.0 or ::): it names no host"
		broadcast   = "address must not be the broadcast address 255.255.255.255: it names no host"
		notAnAddr   = "address must be an IPv4 address, an IPv6 address or a DNS name"
	)
	for i, c := range []struct{ addr, want string }{
		{"169.254.169.254", linkLocal},
		{"169.254.0.1", linkLocal},
		{"fe80::1", linkLocal},
		{"febf::1", linkLocal},
		{"224.0.0.1", multicast},
		{"239.255.255.250", multicast},
		{"ff02::1", multicast},
		{"0.0.0.0", unspecified},
		{"::", unspecified},
		{"255.255.255.255", broadcast},
		// isIP refuses IPv4-mapped and zoned forms; neither is a DNS name.
		{"::ffff:169.254.169.254", notAnAddr},
		{"fe80::1%eth0", notAnAddr},
	} {
		t.Run(c.addr, func(t *testing.T) {
			g := NewWithT(t)
			err := k8s.Create(t.Context(), instance(fmt.Sprintf("refused-%d", i), func(s *wmcov1.WindowsInstanceSpec) { s.Address = c.addr }))
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
			g.Expect(err.Error()).To(ContainSubstring("spec.address"))
			g.Expect(err.Error()).To(ContainSubstring(c.want))
			t.Log(err)
		})
	}
}

// Port 0 cannot be sent through the typed client (omitempty drops it and the
// default applies), so send the raw object as a user's YAML would.
func TestWindowsInstanceRejectsPortZero(t *testing.T) {
	g := NewWithT(t)
	u := map[string]any{
		"apiVersion": "wmco.io/v1alpha1",
		"kind":       "WindowsInstance",
		"metadata":   map[string]any{"name": "port-zero"},
		"spec":       map[string]any{"address": "10.1.42.7", "username": "Administrator", "port": 0},
	}
	err := k8s.Create(t.Context(), &unstructured.Unstructured{Object: u})
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("spec.port"))
	g.Expect(err.Error()).To(ContainSubstring("should be greater than or equal to 1"))
}

func TestWindowsNodeConfigSingletonAndDefaults(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()

	err := k8s.Create(ctx, &wmcov1.WindowsNodeConfig{ObjectMeta: metav1.ObjectMeta{Name: "other"}})
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("its name must be 'cluster'"))

	g.Expect(k8s.Create(ctx, &wmcov1.WindowsNodeConfig{ObjectMeta: metav1.ObjectMeta{Name: wmcov1.WindowsNodeConfigName}})).To(Succeed())
	got := &wmcov1.WindowsNodeConfig{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: wmcov1.WindowsNodeConfigName}, got)).To(Succeed())
	g.Expect(got.Spec.Network.Type).To(Equal(wmcov1.NetworkOVNHybridOverlay))
	g.Expect(got.Spec.Taints).To(Equal([]wmcov1.NodeTaint{{Key: "os", Value: "Windows", Effect: "NoSchedule"}}))
	g.Expect(got.Spec.MaxParallelConfigurations).To(Equal(int32(50)))
	g.Expect(got.Spec.MaxUnavailable).To(Equal(ptr(intstr.FromString("25%"))))
	g.Expect(got.Spec.LogRotation).To(Equal(wmcov1.LogRotationSpec{MaxFileSizeMiB: 100, MaxAgeDays: 7, MaxFiles: 10}))
	g.Expect(got.Spec.Containerd.PauseImage).To(Equal("registry.k8s.io/pause:3.10"))
	g.Expect(got.Spec.Proxy).To(BeNil())
	g.Expect(got.Spec.TrustedCA).To(BeNil())
}

func TestWindowsNodeConfigAcceptsProxyAndTrustedCA(t *testing.T) {
	g := NewWithT(t)
	cfg := &wmcov1.WindowsNodeConfig{}
	g.Expect(k8s.Get(t.Context(), client.ObjectKey{Name: wmcov1.WindowsNodeConfigName}, cfg)).To(Succeed())
	cfg.Spec.Proxy = &wmcov1.ProxySpec{
		HTTPProxy:  "http://user:secret@proxy.local:3128",
		HTTPSProxy: "https://proxy.local:3129",
		NoProxy:    ".example.com,10.0.0.0/8,registry.local",
	}
	cfg.Spec.TrustedCA = &wmcov1.TrustedCASpec{}
	cfg.Spec.Containerd.RegistryMirrors = []wmcov1.RegistryMirror{{Registry: "docker.io", Endpoints: []string{"https://mirror.local"}, NeverContactSource: true}}
	g.Expect(k8s.Update(t.Context(), cfg, client.DryRunAll)).To(Succeed())
	g.Expect(cfg.Spec.TrustedCA.Key).To(Equal(wmcov1.DefaultTrustedCAKey), "the key defaults")
	g.Expect(cfg.Spec.TrustedCA.ConfigMapName).To(Equal("trusted-ca"), "the ConfigMap defaults")
	g.Expect(cfg.Spec.Containerd.RegistryMirrors[0].NeverContactSource).To(BeTrue())
}

func TestWindowsNodeConfigRejectsBadSpecs(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*wmcov1.WindowsNodeConfigSpec)
		want   string
	}{
		{"bad cluster CIDR", func(s *wmcov1.WindowsNodeConfigSpec) { s.Network.ClusterNetworkCIDR = "10.0.0.0" }, "clusterNetworkCIDR must be a CIDR"},
		{"bad DNS server", func(s *wmcov1.WindowsNodeConfigSpec) { s.Network.DNSServer = "dns" }, "dnsServer must be an IP address"},
		{"vxlan port without overlay", func(s *wmcov1.WindowsNodeConfigSpec) {
			s.Network.Type = wmcov1.NetworkNone
			s.Network.VXLANPort = ptr(int32(4790))
		}, "vxlanPort applies only to network type OVNHybridOverlay"},
		{"maxUnavailable 0", func(s *wmcov1.WindowsNodeConfigSpec) { s.MaxUnavailable = ptr(intstr.FromInt32(0)) }, "maxUnavailable must be"},
		{"maxUnavailable 150%", func(s *wmcov1.WindowsNodeConfigSpec) { s.MaxUnavailable = ptr(intstr.FromString("150%")) }, "maxUnavailable must be"},
		{"bad taint effect", func(s *wmcov1.WindowsNodeConfigSpec) {
			s.Taints = []wmcov1.NodeTaint{{Key: "os", Value: "Windows", Effect: "Sometimes"}}
		}, "spec.taints[0].effect"},
		{"mirror without scheme", func(s *wmcov1.WindowsNodeConfigSpec) {
			s.Containerd.RegistryMirrors = []wmcov1.RegistryMirror{{Registry: "docker.io", Endpoints: []string{"mirror.local"}}}
		}, "mirror endpoints must be http:// or https:// URLs"},
		{"proxy without scheme", func(s *wmcov1.WindowsNodeConfigSpec) {
			s.Proxy = &wmcov1.ProxySpec{HTTPProxy: "proxy.local:3128"}
		}, "httpProxy must be an http:// or https:// URL"},
		{"https proxy of another scheme", func(s *wmcov1.WindowsNodeConfigSpec) {
			s.Proxy = &wmcov1.ProxySpec{HTTPSProxy: "socks5://user:secret@proxy.local:1080"}
		}, "httpsProxy must be an http:// or https:// URL"},
		{"noProxy with spaces", func(s *wmcov1.WindowsNodeConfigSpec) {
			s.Proxy = &wmcov1.ProxySpec{HTTPProxy: "http://proxy.local:3128", NoProxy: "a.example.com, b.example.com"}
		}, "spec.proxy.noProxy"},
		{"trusted CA in a ConfigMap the operator may not read", func(s *wmcov1.WindowsNodeConfigSpec) {
			s.TrustedCA = &wmcov1.TrustedCASpec{ConfigMapName: "user-ca"}
		}, "spec.trustedCA.configMapName"},
		{"trusted CA key with a slash", func(s *wmcov1.WindowsNodeConfigSpec) {
			s.TrustedCA = &wmcov1.TrustedCASpec{Key: "a/b"}
		}, "spec.trustedCA.key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			// Validate with a dry-run update of the singleton, so each case
			// sees the rule it targets and not the singleton rule.
			cfg := &wmcov1.WindowsNodeConfig{}
			g.Expect(k8s.Get(t.Context(), client.ObjectKey{Name: wmcov1.WindowsNodeConfigName}, cfg)).To(Succeed())
			tc.mutate(&cfg.Spec)
			err := k8s.Update(t.Context(), cfg, client.DryRunAll)
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
			g.Expect(err.Error()).NotTo(ContainSubstring("secret"), "a proxy password is never echoed")
		})
	}
}

func ptr[T any](v T) *T { return &v }
