package wicd_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// proxyPassword must never appear in what the agent prints.
const proxyPassword = "pr0xy-Passw0rd"

// settingsHost is a simulated host with a payload on its disk, which the
// test applies rendered plans to through `wicd apply`, as the operator
// does.
type settingsHost struct {
	t        *testing.T
	node     *simagent.Node
	manifest *payload.Manifest
}

func startSettingsHost(t *testing.T) *settingsHost {
	t.Helper()
	h, err := winsim.Start(context.Background(), winsim.Options{Hostname: "WIN-2022-A"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	// The agent service re-applies the applied plan at start only.
	node, err := simagent.Install(h, simagent.Options{AgentRunInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Disk().WriteFile(wicdapi.AgentPath, simagent.AgentImage("sim")); err != nil {
		t.Fatal(err)
	}
	m := &payload.Manifest{Version: "v1.37.2-wmco.1", KubernetesVersion: "v1.37.2"}
	for _, c := range payload.Components() {
		for _, p := range payload.RequiredFiles(c) {
			m.Files = append(m.Files, payload.File{Path: p, Component: c, Size: 1, SHA256: strings.Repeat("0", 64)})
			if err := h.Disk().WriteFile(m.HostPath(p), []byte("MZ "+p)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := h.Disk().WriteFile(m.HostPath(idleKubelet), []byte("MZ idle kubelet")); err != nil {
		t.Fatal(err)
	}
	return &settingsHost{t: t, node: node, manifest: m}
}

// idleKubelet stands in for kubelet.exe: the kubelet emulator needs an API
// server, and this test is about what the agent restarts, not about the
// kubelet. Only the wrapped program's name changes, the same in every
// plan.
const idleKubelet = "kubelet-idle.exe"

func (s *settingsHost) inputs() nodeconfig.Inputs {
	ca, err := os.ReadFile("../nodeconfig/testdata/ca.crt")
	if err != nil {
		s.t.Fatal(err)
	}
	return nodeconfig.Inputs{
		Config: wmcov1alpha1.WindowsNodeConfigSpec{},
		Cluster: nodeconfig.ClusterFacts{
			APIServerURL: "https://api.cluster.example.com:6443", CACertPEM: ca,
			ServiceCIDR: "172.30.0.0/16", ClusterNetworkCIDR: "10.132.0.0/14", DNSIP: "172.30.0.10",
			KubernetesVersion: "v1.37.2",
		},
		Host:     nodeconfig.HostFacts{Hostname: "WIN-2022-A", OSBuild: nodeconfig.OSBuildServer2022, Addresses: []string{"10.0.12.34"}},
		NodeName: "win-2022-a", Payload: s.manifest, BootstrapToken: "abcdef.0123456789abcdef",
		HostSubnet: "10.132.4.0/24",
	}
}

// apply renders the inputs, uploads the plan and runs `wicd apply` as the
// operator does; it returns what the agent printed.
func (s *settingsHost) apply(g Gomega, in nodeconfig.Inputs) (*wicdapi.ApplyResult, string) {
	plan, err := nodeconfig.Render(in)
	g.Expect(err).NotTo(HaveOccurred())
	kubelet := s.manifest.HostPath(payload.KubeletPath)
	for i := range plan.Services {
		for j, a := range plan.Services[i].Args {
			if a == kubelet {
				plan.Services[i].Args[j] = s.manifest.HostPath(idleKubelet)
			}
		}
	}
	data, err := json.Marshal(plan)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.node.Host.Disk().WriteFile(wicdapi.PlanPath, data)).To(Succeed())
	var stdout, stderr bytes.Buffer
	code := wicd.Main(context.Background(), s.node.Backend(), []string{"apply", "--plan", wicdapi.PlanPath}, &stdout, &stderr)
	g.Expect(code).To(Equal(0), "stdout %s\nstderr %s", stdout.String(), stderr.String())
	res := &wicdapi.ApplyResult{}
	g.Expect(json.Unmarshal(stdout.Bytes(), res)).To(Succeed())
	return res, stdout.String() + stderr.String()
}

func (s *settingsHost) starts() map[string]int {
	out := map[string]int{}
	for _, n := range []string{nodeconfig.ServiceContainerd, nodeconfig.ServiceKubelet, nodeconfig.ServiceHybridOverlay,
		nodeconfig.ServiceKubeProxy, nodeconfig.ServiceCSIProxy, nodeconfig.ServiceWindowsExporter, wicdapi.AgentServiceName} {
		out[n] = s.node.Services.Starts(n)
	}
	return out
}

// restarted lists the services a result says were restarted, sorted.
func restarted(res *wicdapi.ApplyResult) []string {
	var out []string
	for _, c := range res.Changes {
		if c.Kind == "service" && c.Action == "restarted" {
			out = append(out, c.Name)
		}
	}
	slices.Sort(out)
	return out
}

func ofKind(res *wicdapi.ApplyResult, kind string) []wicdapi.Change {
	var out []wicdapi.Change
	for _, c := range res.Changes {
		if c.Kind == kind {
			out = append(out, c)
		}
	}
	return out
}

// testCerts returns n fresh CA certificates (DER) from the bundle in
// nodeconfig's testdata and the kubelet client CA there.
func testCerts(t *testing.T) (bundle []byte, ders [][]byte, clientCA []byte) {
	bundle, err := os.ReadFile("../nodeconfig/testdata/trusted-ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	for rest := bundle; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if !slices.ContainsFunc(ders, func(d []byte) bool { return bytes.Equal(d, b.Bytes) }) {
			ders = append(ders, b.Bytes)
		}
	}
	clientCA, err = os.ReadFile("../nodeconfig/testdata/kubelet-client-ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	return bundle, ders, clientCA
}

func pemOf(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }

// TestClusterSettingsRestartOnlyWhatUsesThem applies plans that differ by
// one cluster setting at a time to a simulated host and checks what the
// agent restarts: a proxy change restarts containerd and the kubelet and
// their dependents only; trusted CAs, image mirrors and the kubelet client
// CA restart nothing.
func TestClusterSettingsRestartOnlyWhatUsesThem(t *testing.T) {
	g := NewWithT(t)
	s := startSettingsHost(t)
	_, ders, clientCA := testCerts(t)
	a, b := ders[0], ders[1]
	foreign := func() []byte {
		cert, err := x509.ParseCertificate(b)
		g.Expect(err).NotTo(HaveOccurred())
		return cert.Raw
	}()

	in := s.inputs()
	res, _ := s.apply(g, in)
	g.Expect(ofKind(res, "service")).NotTo(BeEmpty())
	g.Eventually(s.node.Networks).Should(ContainElement(nodeconfig.HybridOverlayNetwork))
	res, _ = s.apply(g, in)
	g.Expect(res.Changes).To(BeEmpty(), "the same plan again changes nothing")

	t.Run("proxy", func(t *testing.T) {
		g := NewWithT(t)
		before := s.starts()
		in.Config.Proxy = &wmcov1alpha1.ProxySpec{
			HTTPProxy:  "http://wmco:" + proxyPassword + "@proxy.local:3128",
			HTTPSProxy: "http://wmco:" + proxyPassword + "@proxy.local:3128",
		}
		res, printed := s.apply(g, in)
		g.Expect(restarted(res)).To(Equal([]string{nodeconfig.ServiceContainerd, nodeconfig.ServiceHybridOverlay,
			nodeconfig.ServiceKubeProxy, nodeconfig.ServiceKubelet}))
		g.Expect(ofKind(res, "file")).To(BeEmpty(), "no file holds the proxy")
		g.Expect(printed).NotTo(ContainSubstring(proxyPassword))
		after := s.starts()
		for _, n := range []string{nodeconfig.ServiceContainerd, nodeconfig.ServiceKubelet, nodeconfig.ServiceHybridOverlay, nodeconfig.ServiceKubeProxy} {
			g.Expect(after[n]).To(Equal(before[n]+1), n)
		}
		for _, n := range []string{nodeconfig.ServiceCSIProxy, nodeconfig.ServiceWindowsExporter, wicdapi.AgentServiceName} {
			g.Expect(after[n]).To(Equal(before[n]), n)
		}
		// The service manager holds the environment the processes start
		// with.
		for _, n := range []string{nodeconfig.ServiceContainerd, nodeconfig.ServiceKubelet} {
			st, err := s.node.Services.Query(context.Background(), n)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(st.Config.Env).To(HaveKeyWithValue("HTTPS_PROXY", in.Config.Proxy.HTTPSProxy), n)
			g.Expect(st.Config.Env).To(HaveKeyWithValue("NO_PROXY", ContainSubstring(".svc")), n)
		}
		st, err := s.node.Services.Query(context.Background(), nodeconfig.ServiceCSIProxy)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(st.Config.Env).To(BeEmpty())
	})

	t.Run("trusted CAs", func(t *testing.T) {
		g := NewWithT(t)
		// An administrator trusts b already, and another CA.
		g.Expect(s.node.AddRootCertificate(foreign)).To(Succeed())
		before := s.starts()
		in.Cluster.TrustedCAPEM = append(pemOf(a), pemOf(b)...)
		res, _ := s.apply(g, in)
		g.Expect(res.Changes).To(Equal([]wicdapi.Change{{Kind: wicdapi.ChangeKindCertificate, Name: wicdapi.Thumbprint(a), Action: "created"}}),
			"b was there: not imported, so never removed")
		g.Expect(s.node.RootCertificates()).To(ConsistOf(wicdapi.Thumbprint(a), wicdapi.Thumbprint(b)))
		g.Expect(s.starts()).To(Equal(before), "no restart for a CA")
		res, _ = s.apply(g, in)
		g.Expect(res.Changes).To(BeEmpty())

		// Both leave the bundle: the agent removes what it imported only.
		in.Cluster.TrustedCAPEM = nil
		res, _ = s.apply(g, in)
		g.Expect(res.Changes).To(Equal([]wicdapi.Change{{Kind: wicdapi.ChangeKindCertificate, Name: wicdapi.Thumbprint(a), Action: "removed"}}))
		g.Expect(s.node.RootCertificates()).To(Equal([]string{wicdapi.Thumbprint(b)}), "the foreign CA stays")
		g.Expect(s.starts()).To(Equal(before))
		_, err := s.node.Host.Disk().Stat(wicdapi.TrustedRootsRecordPath)
		g.Expect(err).To(HaveOccurred(), "an empty record is no file")

		in.Cluster.TrustedCAPEM = pemOf(a)
		res, _ = s.apply(g, in)
		g.Expect(ofKind(res, wicdapi.ChangeKindCertificate)).To(HaveLen(1))
		g.Expect(s.starts()).To(Equal(before))
	})

	t.Run("image mirrors", func(t *testing.T) {
		g := NewWithT(t)
		before := s.starts()
		in.Cluster.ImageMirrors = []nodeconfig.ImageMirror{{Source: "quay.io", Mirrors: []string{"mirror.local:5000/quay"}, NeverContactSource: true}}
		res, _ := s.apply(g, in)
		g.Expect(res.Changes).To(ConsistOf(
			wicdapi.Change{Kind: "directory", Name: nodeconfig.ContainerdHostsDir + `\quay.io`, Action: "created"},
			wicdapi.Change{Kind: "file", Name: nodeconfig.ContainerdHostsDir + `\quay.io\hosts.toml`, Action: "created"},
		))
		g.Expect(s.starts()).To(Equal(before), "containerd reads hosts.toml at every pull")
		hosts, err := s.node.Host.Disk().ReadFile(nodeconfig.ContainerdHostsDir + `\quay.io\hosts.toml`)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(hosts)).To(ContainSubstring(`server = "https://mirror.local:5000/v2/quay"`))
	})

	t.Run("kubelet client CA", func(t *testing.T) {
		g := NewWithT(t)
		before := s.starts()
		in.Cluster.KubeletClientCAPEM = clientCA
		res, _ := s.apply(g, in)
		g.Expect(res.Changes).To(Equal([]wicdapi.Change{{Kind: "file", Name: nodeconfig.KubeletClientCAPath, Action: "updated"}}))
		g.Expect(s.starts()).To(Equal(before), "the kubelet reloads its client CA")
	})

	t.Run("cleanup", func(t *testing.T) {
		g := NewWithT(t)
		res, err := wicd.Cleanup(context.Background(), s.node.Backend(), wicd.CleanupOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Changes).To(ContainElement(wicdapi.Change{Kind: wicdapi.ChangeKindCertificate, Name: wicdapi.Thumbprint(a), Action: "removed"}))
		g.Expect(s.node.RootCertificates()).To(Equal([]string{wicdapi.Thumbprint(b)}), "cleanup leaves what the agent did not import")
	})
}

// TestTrustedRootsNeedAnAdministrator: the LocalMachine Root store is an
// administrator's to change; an agent run by another user fails, and its
// record lists no certificate it did not import.
func TestTrustedRootsNeedAnAdministrator(t *testing.T) {
	g := NewWithT(t)
	s := startSettingsHost(t)
	_, ders, _ := testCerts(t)
	in := s.inputs()
	in.Cluster.TrustedCAPEM = pemOf(ders[0])
	plan, err := nodeconfig.Render(in)
	g.Expect(err).NotTo(HaveOccurred())
	data, err := json.Marshal(plan)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.node.Host.Disk().WriteFile(wicdapi.PlanPath, data)).To(Succeed())

	s.node.Host.SetAdmin("jdoe", false)
	var stdout, stderr bytes.Buffer
	code, err := s.node.Host.Exec(context.Background(), "jdoe", []string{wicdapi.AgentPath, "apply", "--plan", wicdapi.PlanPath}, &stdout, &stderr)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).To(Equal(1))
	// It fails as soon as it guards the plan's credentials, before the
	// store: both are an administrator's.
	g.Expect(stdout.String()).To(ContainSubstring("Access is denied"))
	g.Expect(s.node.RootCertificates()).To(BeEmpty())
	_, err = s.node.Host.Disk().Stat(wicdapi.TrustedRootsRecordPath)
	g.Expect(err).To(HaveOccurred())
}

// TestPlanWithBadTrustedRootIsRefused: a plan whose trusted root is not
// one PEM certificate is invalid, and the error does not quote it.
func TestPlanWithBadTrustedRootIsRefused(t *testing.T) {
	g := NewWithT(t)
	s := startSettingsHost(t)
	plan, err := nodeconfig.Render(s.inputs())
	g.Expect(err).NotTo(HaveOccurred())
	_, ders, _ := testCerts(t)
	two := string(pemOf(ders[0])) + string(pemOf(ders[1]))
	for _, bad := range []string{"-----BEGIN CERTIFICATE-----\nU0VDUkVU\n-----END CERTIFICATE-----\n", two, "SECRET"} {
		plan.TrustedRootCertificates = []string{string(pemOf(ders[0])), bad}
		_, err := wicd.Apply(context.Background(), s.node.Backend(), plan)
		var we *wicdapi.Error
		g.Expect(errors.As(err, &we)).To(BeTrue(), "%v", err)
		g.Expect(we.Code).To(Equal(wicdapi.CodeInvalidPlan))
		g.Expect(err.Error()).To(ContainSubstring("trusted root certificate 1 "))
		g.Expect(err.Error()).NotTo(ContainSubstring("U0VDUkVU"))
		g.Expect(err.Error()).NotTo(ContainSubstring("SECRET"))
	}
	g.Expect(s.node.RootCertificates()).To(BeEmpty())
}

// TestPlansAndSensitiveFilesOnlyForAdministrators: the plans (the
// bootstrap token, a proxy's password are in them) and the files the plan
// marks sensitive get the administrators-only security descriptor.
func TestPlansAndSensitiveFilesOnlyForAdministrators(t *testing.T) {
	g := NewWithT(t)
	s := startSettingsHost(t)
	plan, err := nodeconfig.Render(s.inputs())
	g.Expect(err).NotTo(HaveOccurred())
	data, err := json.Marshal(plan)
	g.Expect(err).NotTo(HaveOccurred())
	disk := s.node.Host.Disk()
	g.Expect(disk.WriteFile(wicdapi.PlanPath, data)).To(Succeed())
	var stdout, stderr bytes.Buffer
	code, err := s.node.Host.Exec(context.Background(), "Administrator", []string{wicdapi.AgentPath, "apply", "--plan", wicdapi.PlanPath}, &stdout, &stderr)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).To(Equal(0), stdout.String()+stderr.String())
	sensitive := []string{wicdapi.PlanPath, wicdapi.AppliedPlanPath}
	for _, f := range plan.Files {
		if f.Sensitive {
			sensitive = append(sensitive, f.Path)
		}
	}
	g.Expect(sensitive).To(ContainElement(nodeconfig.BootstrapKubeconfigPath))
	for _, p := range sensitive {
		sd, err := disk.Security(p)
		g.Expect(err).NotTo(HaveOccurred(), p)
		g.Expect(sd).To(Equal(wicd.AdministratorsKeysSDDL), p)
	}
	sd, err := disk.Security(nodeconfig.KubeletConfigPath)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sd).NotTo(Equal(wicd.AdministratorsKeysSDDL), "a file without credentials keeps its inherited security")
}
