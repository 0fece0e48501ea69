/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/tools/clientcmd"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// openShiftInputs are testInputs with every cluster setting OpenShift
// provides (withOpenShiftSettings).
func openShiftInputs(t testing.TB) Inputs {
	in := testInputs(t)
	withOpenShiftSettings(&in)
	return in
}

// withOpenShiftSettings sets every cluster setting OpenShift provides: pod
// networks, VXLAN port, proxy, trusted CA bundle, kubelet client CA and
// image mirrors.
func withOpenShiftSettings(in *Inputs) {
	read := func(name string) []byte {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			panic(err)
		}
		return data
	}
	in.Cluster.PodNetworkCIDRs = []string{"10.128.0.0/14", "10.132.0.0/14", "10.128.0.0/14", "fd01::/48"}
	in.Cluster.VXLANPort = 9898
	in.Cluster.Proxy = Proxy{
		HTTPProxy:  "http://proxy.corp.example:3128",
		HTTPSProxy: "http://proxy.corp.example:3128",
		NoProxy:    ".corp.example,10.0.0.0/8",
	}
	in.Cluster.TrustedCAPEM = read("trusted-ca.pem")
	in.Cluster.KubeletClientCAPEM = read("kubelet-client-ca.crt")
	in.Cluster.ImageMirrors = []ImageMirror{
		{Source: "quay.io/openshift-release-dev/ocp-v4.0-art-dev", Mirrors: []string{"mirror.corp.example:5000/ocp/openshift-release-dev/ocp-v4.0-art-dev"}},
		{Source: "registry.redhat.io", Mirrors: []string{"mirror.corp.example:5000/redhat"}, NeverContactSource: true},
		{Source: "docker.io", Mirrors: []string{"mirror.corp.example:5000/dockerhub"}, Resolve: true},
	}
}

func TestVXLANPortPrecedence(t *testing.T) {
	port := func(p int32) *int32 { return &p }
	cases := []struct {
		name    string
		spec    *int32
		cluster int32
		build   int
		want    string
		wantErr string
	}{
		{name: "neither: the default", want: "4789"},
		{name: "the cluster's", cluster: 9898, want: "9898"},
		{name: "the config over the cluster's", spec: port(4790), cluster: 9898, want: "4790"},
		{name: "the cluster's on Server 2019", cluster: 9898, build: OSBuildServer2019, wantErr: "cluster.vxlanPort: 9898 is not supported on Windows Server 2019"},
		{name: "the config's on Server 2019", spec: port(9898), build: OSBuildServer2019, wantErr: "config.network.vxlanPort: 9898 is not supported"},
		{name: "the cluster's out of range", cluster: 70000, wantErr: "cluster.vxlanPort: 70000 must be between 1 and 65535"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			in := testInputs(t)
			in.Config.Network.VXLANPort = tc.spec
			in.Cluster.VXLANPort = tc.cluster
			if tc.build != 0 {
				in.Host.OSBuild = tc.build
			}
			plan, err := Render(in)
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			_, args := Command(serviceByName(t, plan, ServiceHybridOverlay))
			g.Expect(strings.Join(args, " ")).To(ContainSubstring("--hybrid-overlay-vxlan-port " + tc.want))
		})
	}
}

func TestPodNetworkCIDRsSkipNAT(t *testing.T) {
	g := NewWithT(t)
	in := openShiftInputs(t)
	plan := mustRender(t, in)
	var cni cniConfig
	g.Expect(json.Unmarshal(file(t, plan, CNIConfigPath).Content, &cni)).To(Succeed())
	g.Expect(cni.Policies[0].Value.Type).To(Equal("OutBoundNAT"))
	// The cluster network first, the service network, then the other pod
	// networks: repeats and IPv6 (the overlay is IPv4 only) left out.
	g.Expect(cni.Policies[0].Value.Settings["Exceptions"]).To(Equal([]any{"10.132.0.0/14", "172.30.0.0/16", "10.128.0.0/14"}))

	in.Cluster.PodNetworkCIDRs = []string{"10.128.0.1/14"}
	_, err := Render(in)
	g.Expect(err).To(MatchError(ContainSubstring("cluster.podNetworkCIDRs[0]: \"10.128.0.1/14\" has host bits set")))
}

func TestProxy(t *testing.T) {
	const wantNoProxy = ".corp.example,10.0.0.0/8,172.30.0.0/16,10.132.0.0/14,10.128.0.0/14,fd01::/48,.svc,.cluster.local,localhost,127.0.0.1,api.cluster.example.com"
	cases := []struct {
		name      string
		mutate    func(*Inputs)
		wantEnv   map[string]string
		sensitive bool
		wantErr   string
	}{
		{name: "none", mutate: func(in *Inputs) { in.Cluster.Proxy = Proxy{} }},
		{name: "noProxy alone sets nothing", mutate: func(in *Inputs) { in.Cluster.Proxy = Proxy{NoProxy: "a.example"} }},
		{name: "the cluster's", mutate: func(*Inputs) {},
			wantEnv: map[string]string{"HTTP_PROXY": "http://proxy.corp.example:3128", "HTTPS_PROXY": "http://proxy.corp.example:3128", "NO_PROXY": wantNoProxy}},
		{name: "the config's overrides the cluster's", mutate: func(in *Inputs) {
			in.Config.Proxy = &wmcov1alpha1.ProxySpec{HTTPSProxy: "https://user:s3cret@proxy.local:3129", NoProxy: " .svc , registry.local ,"}
		}, sensitive: true, wantEnv: map[string]string{
			"HTTPS_PROXY": "https://user:s3cret@proxy.local:3129",
			"NO_PROXY":    ".svc,registry.local,172.30.0.0/16,10.132.0.0/14,10.128.0.0/14,fd01::/48,.cluster.local,localhost,127.0.0.1,api.cluster.example.com",
		}},
		{name: "an empty config proxy leaves the cluster's", mutate: func(in *Inputs) { in.Config.Proxy = &wmcov1alpha1.ProxySpec{} },
			wantEnv: map[string]string{"HTTP_PROXY": "http://proxy.corp.example:3128", "HTTPS_PROXY": "http://proxy.corp.example:3128", "NO_PROXY": wantNoProxy}},
		{name: "a bad URL is never quoted", mutate: func(in *Inputs) {
			in.Cluster.Proxy.HTTPProxy = "socks5://user:s3cret@proxy.local:1080"
		}, wantErr: "cluster.proxy.httpProxy: is not an http:// or https:// proxy URL (value not shown"},
		{name: "a URL that is not UTF-8 (fuzzing found it, changed by the JSON round trip to the host)", mutate: func(in *Inputs) {
			in.Cluster.Proxy.HTTPProxy = "http://user:s3cret@\xde"
		}, wantErr: "cluster.proxy.httpProxy: is not an http:// or https:// proxy URL (value not shown"},
		{name: "a bad noProxy entry", mutate: func(in *Inputs) { in.Cluster.Proxy.NoProxy = "a.example,b c" },
			wantErr: `cluster.proxy.noProxy: "b c" is not a host name`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			in := openShiftInputs(t)
			tc.mutate(&in)
			plan, err := Render(in)
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				g.Expect(err.Error()).NotTo(ContainSubstring("s3cret"))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			for _, s := range plan.Services {
				if (s.Name == ServiceContainerd || s.Name == ServiceKubelet) && tc.wantEnv != nil {
					g.Expect(s.Env).To(Equal(tc.wantEnv), s.Name)
					g.Expect(s.SensitiveEnv).To(Equal(tc.sensitive), s.Name)
				} else {
					g.Expect(s.Env).To(BeNil(), s.Name)
					g.Expect(s.SensitiveEnv).To(BeFalse(), s.Name)
				}
			}
			// No file holds the proxy.
			for _, f := range plan.Files {
				g.Expect(string(f.Content)).NotTo(ContainSubstring("proxy.local"), f.Path)
			}
		})
	}
}

// TestNoClusterSettingsNoChange: without proxy, trusted CAs and mirrors the
// plan has no trace of them, so hosts rendered before these settings
// existed do not change.
func TestNoClusterSettingsNoChange(t *testing.T) {
	g := NewWithT(t)
	plan := mustRender(t, testInputs(t))
	g.Expect(plan.TrustedRootCertificates).To(BeNil())
	for _, s := range plan.Services {
		g.Expect(s.Env).To(BeNil(), s.Name)
	}
	data, err := json.Marshal(plan)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(data)).NotTo(ContainSubstring("trustedRootCertificates"))
	g.Expect(string(data)).NotTo(ContainSubstring(`"env"`))
	g.Expect(string(data)).NotTo(ContainSubstring("sensitiveEnv"))
}

func TestTrustedCAs(t *testing.T) {
	bundle := readTestdata(t, "trusted-ca.pem")
	var ders [][]byte
	for rest := bundle; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		ders = append(ders, b.Bytes)
	}
	cases := []struct {
		name    string
		bundle  []byte
		want    [][]byte
		wantErr string
	}{
		{name: "none", bundle: nil},
		{name: "blank", bundle: []byte("\n \n")},
		{name: "comments, repeats", bundle: bundle, want: ders[:2]},
		{name: "no certificate", bundle: []byte("# nothing here\n"), wantErr: "cluster.trustedCAPEM: holds no PEM certificate"},
		{name: "a key", bundle: append(slices.Clone(bundle), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("SECRETKEYBYTES")})...),
			wantErr: `cluster.trustedCAPEM: PEM block 4 is a "PRIVATE KEY", not a CERTIFICATE`},
		{name: "garbage certificate", bundle: append(slices.Clone(bundle), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("SECRETKEYBYTES")})...),
			wantErr: "cluster.trustedCAPEM: certificate 4 is not a valid X.509 certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			in := testInputs(t)
			in.Cluster.TrustedCAPEM = tc.bundle
			plan, err := Render(in)
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				g.Expect(err.Error()).NotTo(ContainSubstring("SECRETKEY"))
				g.Expect(err.Error()).NotTo(ContainSubstring("U0VDUkVU"), "nor base64 of it")
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			var got [][]byte
			var thumbs []string
			for _, c := range plan.TrustedRootCertificates {
				b, rest := pem.Decode([]byte(c))
				g.Expect(b).NotTo(BeNil())
				g.Expect(b.Type).To(Equal("CERTIFICATE"))
				g.Expect(rest).To(BeEmpty(), "one certificate each")
				_, err := x509.ParseCertificate(b.Bytes)
				g.Expect(err).NotTo(HaveOccurred())
				got = append(got, b.Bytes)
				thumbs = append(thumbs, wicdapi.Thumbprint(b.Bytes))
			}
			g.Expect(slices.IsSorted(thumbs)).To(BeTrue(), "sorted by thumbprint")
			g.Expect(got).To(ConsistOf(tc.want))
			// The bundle restarts nothing and lands in no file.
			for _, f := range plan.Files {
				for _, c := range plan.TrustedRootCertificates {
					g.Expect(string(f.Content)).NotTo(ContainSubstring(c), f.Path)
				}
			}
		})
	}
}

func TestKubeletClientCA(t *testing.T) {
	g := NewWithT(t)
	in := testInputs(t)
	plan := mustRender(t, in)
	g.Expect(file(t, plan, KubeletClientCAPath).Content).To(Equal(testCA(t)), "the cluster CA when the cluster names none")
	g.Expect(string(file(t, plan, KubeletConfigPath).Content)).To(ContainSubstring(`"clientCAFile": "C:\\var\\lib\\kubelet\\pki\\kubelet-client-ca.crt"`))

	in.Cluster.KubeletClientCAPEM = readTestdata(t, "kubelet-client-ca.crt")
	other := mustRender(t, in)
	g.Expect(file(t, other, KubeletClientCAPath).Content).To(Equal(in.Cluster.KubeletClientCAPEM))
	// Only the client CA file differs: the kubelet reloads it itself.
	for _, f := range other.Files {
		if f.Path != KubeletClientCAPath {
			g.Expect(f.Content).To(Equal(file(t, plan, f.Path).Content), f.Path)
		}
	}
	g.Expect(other.Services).To(Equal(plan.Services))

	in.Cluster.KubeletClientCAPEM = []byte("not PEM")
	_, err := Render(in)
	g.Expect(err).To(MatchError(ContainSubstring("cluster.kubeletClientCAPEM: holds no PEM certificate")))
}

func TestHybridOverlayKubeconfig(t *testing.T) {
	g := NewWithT(t)
	plan := mustRender(t, testInputs(t))
	f := file(t, plan, HybridOverlayKubeconfigPath)
	g.Expect(f.Sensitive).To(BeFalse(), "it names the credential's file, it holds none")
	cfg, err := clientcmd.Load(f.Content)
	g.Expect(err).NotTo(HaveOccurred())
	ctx := cfg.Contexts[cfg.CurrentContext]
	g.Expect(ctx).NotTo(BeNil())
	g.Expect(cfg.Clusters[ctx.Cluster].Server).To(Equal("https://api.cluster.example.com:6443"))
	g.Expect(cfg.Clusters[ctx.Cluster].CertificateAuthorityData).To(Equal(testCA(t)))
	g.Expect(cfg.AuthInfos[ctx.AuthInfo].ClientCertificate).To(Equal(`C:\var\lib\kubelet\pki\kubelet-client-current.pem`))
	g.Expect(cfg.AuthInfos[ctx.AuthInfo].ClientKey).To(Equal(`C:\var\lib\kubelet\pki\kubelet-client-current.pem`))
	g.Expect(cfg.AuthInfos[ctx.AuthInfo].Token).To(BeEmpty())
	g.Expect(plan.Directories).To(ContainElement(HybridOverlayDir))
	g.Expect(plan.Networks).To(Equal([]string{HybridOverlayNetwork, BaseHybridOverlayNetwork}))

	_, args := Command(serviceByName(t, plan, ServiceHybridOverlay))
	g.Expect(strings.Join(args, " ")).To(ContainSubstring(`--k8s-kubeconfig C:\k\hybrid-overlay\kubeconfig`))

	none := testInputs(t)
	none.Config.Network = wmcov1alpha1.NetworkSpec{Type: wmcov1alpha1.NetworkNone}
	none.HostSubnet, none.Cluster.ClusterNetworkCIDR = "", ""
	g.Expect(hasFile(mustRender(t, none), HybridOverlayKubeconfigPath)).To(BeFalse())
}

func TestImageMirrors(t *testing.T) {
	const header = "# Rendered by the Windows Machine Config Operator; changes are overwritten.\n"
	cases := []struct {
		name    string
		cluster []ImageMirror
		spec    []wmcov1alpha1.RegistryMirror
		want    map[string]string // hosts.toml by registry directory
		wantErr string
	}{
		{name: "digest mirrors pull only, tag mirrors resolve too",
			cluster: []ImageMirror{
				{Source: "quay.io", Mirrors: []string{"mirror-a.example", "mirror-b.example:5000"}},
				{Source: "Quay.io", Mirrors: []string{"mirror-b.example:5000", "mirror-c.example"}, Resolve: true},
			},
			want: map[string]string{"quay.io": header + "# Mirrors of quay.io, tried in order before the registry itself.\n" +
				"\n[host.\"https://mirror-a.example\"]\n  capabilities = [\"pull\"]\n" +
				"\n[host.\"https://mirror-b.example:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n" +
				"\n[host.\"https://mirror-c.example\"]\n  capabilities = [\"pull\", \"resolve\"]\n"}},
		{name: "never contact the source: the last mirror is the fallback",
			cluster: []ImageMirror{{Source: "registry.redhat.io", Mirrors: []string{"m1.example", "m2.example/redhat"}, NeverContactSource: true}},
			want: map[string]string{"registry.redhat.io": header + "# Mirrors of registry.redhat.io, tried in order; the registry itself is never contacted.\n" +
				"server = \"https://m2.example/v2/redhat\"\ncapabilities = [\"pull\"]\noverride_path = true\n" +
				"\n[host.\"https://m1.example\"]\n  capabilities = [\"pull\"]\n"}},
		{name: "repository sources: a prefix kept, a rename left out",
			cluster: []ImageMirror{
				{Source: "registry.example.com:5000/team/app", Mirrors: []string{"mirror.local/ocp/team/app", "mirror.local/team-app", "other.local/team/app"}},
			},
			want: map[string]string{"registry.example.com_5000_": header + "# Mirrors of registry.example.com:5000, tried in order before the registry itself.\n" +
				"\n[host.\"https://mirror.local/v2/ocp\"]\n  capabilities = [\"pull\"]\n  override_path = true\n" +
				"\n[host.\"https://other.local\"]\n  capabilities = [\"pull\"]\n"}},
		{name: "the config's mirrors come after the cluster's",
			cluster: []ImageMirror{{Source: "docker.io/library", Mirrors: []string{"mirror.local/dockerhub/library"}}},
			spec: []wmcov1alpha1.RegistryMirror{
				{Registry: "docker.io", Endpoints: []string{"https://spec-mirror.example"}, NeverContactSource: true},
				{Registry: "ghcr.io", Endpoints: []string{"https://ghcr-mirror.example/ghcr"}},
			},
			want: map[string]string{
				"docker.io": header + "# Mirrors of docker.io, tried in order; the registry itself is never contacted.\n" +
					"server = \"https://spec-mirror.example\"\ncapabilities = [\"pull\", \"resolve\"]\n" +
					"\n[host.\"https://mirror.local/v2/dockerhub\"]\n  capabilities = [\"pull\"]\n  override_path = true\n",
				"ghcr.io": header + "# Mirrors of ghcr.io, tried in order before the registry itself.\n" +
					"\n[host.\"https://ghcr-mirror.example/ghcr\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
			}},
		{name: "a source with a tag", cluster: []ImageMirror{{Source: "quay.io/app:latest", Mirrors: []string{"m.example"}}},
			wantErr: `cluster.imageMirrors[0]: source: "app:latest" is not a repository path`},
		{name: "a bad mirror", cluster: []ImageMirror{{Source: "quay.io", Mirrors: []string{"https://m.example"}}},
			wantErr: `cluster.imageMirrors[0].mirrors[0]: registry "https:"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			in := testInputs(t)
			in.Cluster.ImageMirrors = tc.cluster
			in.Config.Containerd.RegistryMirrors = tc.spec
			plan, err := Render(in)
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			got := map[string]string{}
			for _, f := range plan.Files {
				if rest, ok := strings.CutPrefix(f.Path, ContainerdHostsDir+`\`); ok {
					dir, name, _ := strings.Cut(rest, `\`)
					g.Expect(name).To(Equal("hosts.toml"))
					g.Expect(plan.Directories).To(ContainElement(ContainerdHostsDir + `\` + dir))
					got[dir] = string(f.Content)
				}
			}
			g.Expect(got).To(Equal(tc.want))
		})
	}
}
