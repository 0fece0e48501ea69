/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/clientcmd"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

func mustRender(t *testing.T, in Inputs) *wicdapi.Plan {
	t.Helper()
	plan, err := Render(in)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return plan
}

func file(t *testing.T, plan *wicdapi.Plan, path string) wicdapi.File {
	t.Helper()
	for _, f := range plan.Files {
		if f.Path == path {
			return f
		}
	}
	t.Fatalf("plan has no file %s", path)
	return wicdapi.File{}
}

func hasFile(plan *wicdapi.Plan, path string) bool {
	return slices.ContainsFunc(plan.Files, func(f wicdapi.File) bool { return f.Path == path })
}

func serviceByName(t *testing.T, plan *wicdapi.Plan, name string) wicdapi.Service {
	t.Helper()
	for _, s := range plan.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("plan has no service %s", name)
	return wicdapi.Service{}
}

func serviceNames(plan *wicdapi.Plan) []string {
	var names []string
	for _, s := range plan.Services {
		names = append(names, s.Name)
	}
	return names
}

// strictDecode decodes JSON into an upstream type, failing on any field
// the type does not have.
func strictDecode(t *testing.T, data []byte, into any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("strict decode into %T: %v\n%s", into, err, data)
	}
}

func TestKubeletConfig(t *testing.T) {
	g := NewWithT(t)
	in := testInputs(t)
	in.Config.Taints = []wmcov1alpha1.NodeTaint{
		{Key: "os", Value: "Windows", Effect: "NoSchedule"},
		{Key: "example.com/gpu", Effect: "NoExecute"},
	}
	plan := mustRender(t, in)

	var kc kubeletv1beta1.KubeletConfiguration
	strictDecode(t, file(t, plan, KubeletConfigPath).Content, &kc)

	g.Expect(kc.Kind).To(Equal("KubeletConfiguration"))
	g.Expect(kc.APIVersion).To(Equal(kubeletv1beta1.SchemeGroupVersion.String()))
	g.Expect(kc.CgroupsPerQOS).To(HaveValue(BeFalse()))
	g.Expect(kc.EnforceNodeAllocatable).To(Equal([]string{"none"}))
	g.Expect(kc.ResolverConfig).To(HaveValue(BeEmpty()), "resolvConf must be set, and empty")
	g.Expect(kc.RotateCertificates).To(BeTrue())
	g.Expect(kc.ServerTLSBootstrap).To(BeTrue())
	g.Expect(kc.ContainerRuntimeEndpoint).To(Equal("npipe://./pipe/containerd-containerd"))
	g.Expect(kc.ClusterDNS).To(Equal([]string{"172.30.0.10"}))
	g.Expect(kc.ClusterDomain).To(Equal("cluster.local"))
	g.Expect(kc.Authentication.X509.ClientCAFile).To(Equal(`C:\var\lib\kubelet\pki\kubelet-client-ca.crt`))
	g.Expect(kc.Authentication.Webhook.Enabled).To(HaveValue(BeTrue()))
	g.Expect(kc.Authentication.Anonymous.Enabled).To(HaveValue(BeFalse()))
	g.Expect(kc.Authorization.Mode).To(Equal(kubeletv1beta1.KubeletAuthorizationModeWebhook))
	g.Expect(kc.RegisterNode).To(HaveValue(BeTrue()))
	g.Expect(kc.EvictionHard).To(HaveKey("memory.available"))
	g.Expect(kc.EvictionHard).To(HaveKey("nodefs.available"))
	g.Expect(kc.EvictionHard).To(HaveKey("imagefs.available"))
	g.Expect(kc.SystemReserved).To(HaveKeyWithValue("memory", "2Gi"))

	// registerWithTaints is exactly the config's taints.
	g.Expect(kc.RegisterWithTaints).To(Equal([]corev1.Taint{
		{Key: "os", Value: "Windows", Effect: corev1.TaintEffectNoSchedule},
		{Key: "example.com/gpu", Effect: corev1.TaintEffectNoExecute},
	}))
	// The CA file the kubelet trusts is in the plan.
	g.Expect(file(t, plan, CACertPath).Content).To(Equal(testCA(t)))
}

func TestTaintsDefaulting(t *testing.T) {
	taintsOf := func(spec func(*wmcov1alpha1.WindowsNodeConfigSpec)) []corev1.Taint {
		in := testInputs(t)
		spec(&in.Config)
		var kc kubeletv1beta1.KubeletConfiguration
		strictDecode(t, file(t, mustRender(t, in), KubeletConfigPath).Content, &kc)
		return kc.RegisterWithTaints
	}
	g := NewWithT(t)
	// nil (unset): the API's default taint.
	g.Expect(taintsOf(func(s *wmcov1alpha1.WindowsNodeConfigSpec) { s.Taints = nil })).
		To(Equal([]corev1.Taint{{Key: "os", Value: "Windows", Effect: corev1.TaintEffectNoSchedule}}))
	// Explicitly empty: no taint.
	g.Expect(taintsOf(func(s *wmcov1alpha1.WindowsNodeConfigSpec) { s.Taints = []wmcov1alpha1.NodeTaint{} })).
		To(BeEmpty())
}

func TestZeroSpecGetsAPIDefaults(t *testing.T) {
	g := NewWithT(t)
	in := testInputs(t)
	want := mustRender(t, in)
	in.Config = wmcov1alpha1.WindowsNodeConfigSpec{}
	g.Expect(mustRender(t, in)).To(Equal(want))

	// Partly set log rotation: each zero field gets its own default.
	in.Config.LogRotation = wmcov1alpha1.LogRotationSpec{MaxAgeDays: 2}
	kubelet := serviceByName(t, mustRender(t, in), ServiceKubelet)
	g.Expect(runnerFlag(kubelet.Args, "log-file-size")).To(Equal("100Mi"))
	g.Expect(runnerFlag(kubelet.Args, "log-file-age")).To(Equal("48h"))

	g.Expect(Defaulted(wmcov1alpha1.WindowsNodeConfigSpec{})).To(Equal(apiDefaultedSpec()))
	none := Defaulted(wmcov1alpha1.WindowsNodeConfigSpec{Network: wmcov1alpha1.NetworkSpec{Type: wmcov1alpha1.NetworkNone}})
	g.Expect(none.Network.VXLANPort).To(BeNil(), "vxlanPort applies only to OVNHybridOverlay")
}

func TestDeterministic(t *testing.T) {
	g := NewWithT(t)
	in := testInputs(t)
	in.NodeLabels = map[string]string{}
	for _, k := range []string{"z.example.com/a", "a.example.com/z", "m.example.com/m", "b.example.com/b", "kubelet.kubernetes.io/x"} {
		in.NodeLabels[k] = "v"
	}
	in.Config.Containerd.RegistryMirrors = []wmcov1alpha1.RegistryMirror{
		{Registry: "quay.io", Endpoints: []string{"https://q.example.com"}},
		{Registry: "docker.io", Endpoints: []string{"https://d.example.com"}},
		{Registry: "ghcr.io", Endpoints: []string{"https://g.example.com"}},
	}
	first, err := json.Marshal(mustRender(t, in))
	g.Expect(err).NotTo(HaveOccurred())
	for range 20 {
		again, err := json.Marshal(mustRender(t, in))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(again).To(Equal(first))
	}
	kubelet := serviceByName(t, mustRender(t, in), ServiceKubelet)
	g.Expect(kubelet.Args).To(ContainElement(
		"--node-labels=a.example.com/z=v,b.example.com/b=v,kubelet.kubernetes.io/x=v,m.example.com/m=v,z.example.com/a=v"))
}

func TestPlanStructure(t *testing.T) {
	g := NewWithT(t)
	plan := mustRender(t, testInputs(t))
	g.Expect(plan.SchemaVersion).To(Equal(wicdapi.SchemaVersion))
	g.Expect(plan.PayloadVersion).To(Equal("v1.37.2-wmco.1"))
	g.Expect(plan.NodeName).To(Equal("win-2022-a"))
	g.Expect(plan.Networks).To(Equal([]string{"OVNKubernetesHybridOverlayNetwork", "BaseOVNKubernetesHybridOverlayNetwork"}))
	g.Expect(plan.FirewallRules).To(ConsistOf(
		wicdapi.FirewallRule{Name: wicdapi.FirewallRuleKubelet, Protocol: "TCP", Port: 10250, Description: "kubelet API"},
		wicdapi.FirewallRule{Name: wicdapi.FirewallRuleWindowsExporter, Protocol: "TCP", Port: 9182, Description: "windows_exporter metrics"},
	))
	g.Expect(plan.DefenderExclusions).To(Equal([]string{`C:\ProgramData\containerd\root`, `C:\ProgramData\containerd\state`}))
	g.Expect(plan.StepTimeoutSeconds).To(Equal(120))
	g.Expect(plan.Copies).To(ConsistOf(
		wicdapi.Copy{From: `C:\k\payload\v1.37.2-wmco.1\containerd-shim-runhcs-v1.exe`, To: `C:\k\containerd\containerd-shim-runhcs-v1.exe`},
		wicdapi.Copy{From: `C:\k\payload\v1.37.2-wmco.1\cni\host-local.exe`, To: `C:\k\cni\bin\host-local.exe`},
		wicdapi.Copy{From: `C:\k\payload\v1.37.2-wmco.1\cni\win-overlay.exe`, To: `C:\k\cni\bin\win-overlay.exe`},
	), "the runhcs shim and the CNI plugins run outside the versioned payload directories")

	g.Expect(plan.Directories).To(ContainElements(`C:\k`, `C:\var\log\kubelet`, `C:\k\cni\config`, `C:\var\lib\kubelet`, `C:\var\lib\kubelet\pki`))
	g.Expect(slices.IsSorted(plan.Directories)).To(BeTrue())
	// Every file's directory is created by the plan.
	for _, f := range plan.Files {
		dir := f.Path[:strings.LastIndex(f.Path, `\`)]
		g.Expect(plan.Directories).To(ContainElement(dir), f.Path)
	}
	g.Expect(slices.IsSortedFunc(plan.Files, func(a, b wicdapi.File) int { return strings.Compare(a.Path, b.Path) })).To(BeTrue())

	// The kubelet's own kubeconfig is the kubelet's to write.
	g.Expect(hasFile(plan, KubeconfigPath)).To(BeFalse())
	// Only the bootstrap kubeconfig is sensitive.
	for _, f := range plan.Files {
		g.Expect(f.Sensitive).To(Equal(f.Path == BootstrapKubeconfigPath), f.Path)
	}

	g.Expect(serviceNames(plan)).To(Equal([]string{
		"containerd", "csi-proxy", "windows-instance-config-daemon", "windows_exporter",
		"kubelet", "hybrid-overlay-node", "kube-proxy",
	}))
}

func TestServiceDependencies(t *testing.T) {
	g := NewWithT(t)
	plan := mustRender(t, testInputs(t))
	deps := map[string][]string{}
	for _, s := range plan.Services {
		deps[s.Name] = s.Dependencies
	}
	g.Expect(deps).To(Equal(map[string][]string{
		"containerd":                     nil,
		"csi-proxy":                      nil,
		"windows_exporter":               nil,
		"windows-instance-config-daemon": nil,
		"kubelet":                        {"containerd"},
		"hybrid-overlay-node":            {"kubelet"},
		"kube-proxy":                     {"hybrid-overlay-node", "kubelet"},
	}))
	// Topological: every dependency comes before its dependent.
	pos := map[string]int{}
	for i, s := range plan.Services {
		pos[s.Name] = i
	}
	for _, s := range plan.Services {
		for _, d := range s.Dependencies {
			g.Expect(pos[d]).To(BeNumerically("<", pos[s.Name]), "%s before %s", d, s.Name)
		}
	}
}

func TestServices(t *testing.T) {
	g := NewWithT(t)
	in := testInputs(t)
	in.Config.LogRotation = wmcov1alpha1.LogRotationSpec{MaxFileSizeMiB: 25, MaxAgeDays: 30}
	plan := mustRender(t, in)
	payloadDir := `C:\k\payload\v1.37.2-wmco.1\`

	for _, s := range plan.Services {
		g.Expect(s.StartType).To(Equal(wicdapi.StartAutomatic), s.Name)
		g.Expect(s.Recovery.RestartDelaySeconds).To(BeNumerically(">", 0), s.Name)
		g.Expect(s.Recovery.RestartDelaySeconds).To(BeNumerically("<=", 10), s.Name)
		g.Expect(s.Description).NotTo(BeEmpty(), s.Name)
		g.Expect(s.DisplayName).NotTo(BeEmpty(), s.Name)

		bin, _ := Command(s)
		if s.Name == wicdapi.AgentServiceName {
			g.Expect(s.Binary).To(Equal(wicdapi.AgentPath))
			g.Expect(s.Args).To(Equal([]string{"run"}))
			continue
		}
		g.Expect(bin).To(HavePrefix(payloadDir), s.Name)
		if IsLogRunner(s.Binary) {
			g.Expect(s.Binary).To(Equal(payloadDir + "kube-log-runner.exe"))
			g.Expect(runnerFlag(s.Args, "log-file")).To(Equal(`C:\var\log\`+s.Name+`\`+s.Name+".log"), s.Name)
			g.Expect(runnerFlag(s.Args, "log-file-size")).To(Equal("25Mi"), s.Name)
			g.Expect(runnerFlag(s.Args, "log-file-age")).To(Equal("720h"), s.Name)
		}
	}
	wrapped := func(name string) bool { return IsLogRunner(serviceByName(t, plan, name).Binary) }
	for _, name := range []string{ServiceKubelet, ServiceKubeProxy, ServiceHybridOverlay, ServiceCSIProxy} {
		g.Expect(wrapped(name)).To(BeTrue(), name)
	}
	for _, name := range []string{ServiceContainerd, ServiceWindowsExporter, wicdapi.AgentServiceName} {
		g.Expect(wrapped(name)).To(BeFalse(), name)
	}

	bin, args := Command(serviceByName(t, plan, ServiceKubelet))
	g.Expect(bin).To(Equal(payloadDir + "kubelet.exe"))
	g.Expect(args).To(Equal([]string{
		`--config=C:\k\kubelet.conf`,
		`--bootstrap-kubeconfig=C:\k\bootstrap-kubeconfig`,
		`--kubeconfig=C:\k\kubeconfig`,
		`--cert-dir=C:\var\lib\kubelet\pki`,
		"--hostname-override=win-2022-a",
		"--node-ip=10.0.12.34",
		"--node-labels=topology.kubernetes.io/zone=zone-a,wmco.io/managed=true",
		"--windows-priorityclass=ABOVE_NORMAL_PRIORITY_CLASS",
		"--windows-service",
		"--v=2",
	}))

	bin, args = Command(serviceByName(t, plan, ServiceHybridOverlay))
	g.Expect(bin).To(Equal(payloadDir + "hybrid-overlay-node.exe"))
	g.Expect(strings.Join(args, " ")).To(ContainSubstring(`--node win-2022-a --k8s-kubeconfig C:\k\hybrid-overlay\kubeconfig`))
	g.Expect(strings.Join(args, " ")).To(ContainSubstring(`--hybrid-overlay-vxlan-port 4789`))

	bin, args = Command(serviceByName(t, plan, ServiceKubeProxy))
	g.Expect(bin).To(Equal(payloadDir + "kube-proxy.exe"))
	g.Expect(args).To(ContainElement(`--config=C:\k\kube-proxy.conf`))

	bin, args = Command(serviceByName(t, plan, ServiceContainerd))
	g.Expect(bin).To(Equal(payloadDir + "containerd.exe"))
	g.Expect(args).To(ContainElements(`--config=C:\k\containerd\containerd.toml`, `--log-file=C:\var\log\containerd\containerd.log`, "--run-service"))

	// No labels: no --node-labels at all.
	in.NodeLabels = nil
	_, args = Command(serviceByName(t, mustRender(t, in), ServiceKubelet))
	g.Expect(strings.Join(args, " ")).NotTo(ContainSubstring("--node-labels"))
}

func TestBootstrapKubeconfig(t *testing.T) {
	g := NewWithT(t)
	plan := mustRender(t, testInputs(t))
	f := file(t, plan, BootstrapKubeconfigPath)
	g.Expect(f.Sensitive).To(BeTrue())
	cfg, err := clientcmd.Load(f.Content)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(clientcmd.Validate(*cfg)).To(Succeed())
	ctx := cfg.Contexts[cfg.CurrentContext]
	g.Expect(ctx).NotTo(BeNil())
	g.Expect(cfg.Clusters[ctx.Cluster].Server).To(Equal("https://api.cluster.example.com:6443"))
	g.Expect(cfg.Clusters[ctx.Cluster].CertificateAuthorityData).To(Equal(testCA(t)))
	g.Expect(cfg.AuthInfos[ctx.AuthInfo].Token).To(Equal(testToken))

	// The token is in this file and nowhere else in the plan.
	for _, other := range plan.Files {
		if other.Path != BootstrapKubeconfigPath {
			g.Expect(string(other.Content)).NotTo(ContainSubstring(testToken), other.Path)
		}
	}
	for _, s := range plan.Services {
		g.Expect(strings.Join(s.Args, " ")).NotTo(ContainSubstring(testToken), s.Name)
	}
}

func TestKubeProxyConfig(t *testing.T) {
	g := NewWithT(t)
	plan := mustRender(t, testInputs(t))
	var kp kubeproxyv1alpha1.KubeProxyConfiguration
	strictDecode(t, file(t, plan, KubeProxyConfigPath).Content, &kp)
	g.Expect(kp.Kind).To(Equal("KubeProxyConfiguration"))
	g.Expect(kp.APIVersion).To(Equal("kubeproxy.config.k8s.io/v1alpha1"))
	g.Expect(kp.Mode).To(BeEquivalentTo("kernelspace"))
	g.Expect(kp.Winkernel.NetworkName).To(Equal("OVNKubernetesHybridOverlayNetwork"))
	g.Expect(kp.Winkernel.EnableDSR).To(BeTrue())
	g.Expect(kp.ClusterCIDR).To(Equal("10.132.0.0/14"))
	g.Expect(kp.ClientConnection.Kubeconfig).To(Equal(`C:\k\kubeconfig`))
	g.Expect(kp.HostnameOverride).To(Equal("win-2022-a"))
	g.Expect(kp.Winkernel.SourceVip).To(Equal("10.132.4.254"))
}

func TestCNIConfig(t *testing.T) {
	g := NewWithT(t)
	plan := mustRender(t, testInputs(t))
	var c struct {
		CNIVersion string `json:"cniVersion"`
		Name       string `json:"name"`
		Type       string `json:"type"`
		APIVersion int    `json:"apiVersion"`
		IPAM       struct {
			Type     string `json:"type"`
			Subnet   string `json:"subnet"`
			RangeEnd string `json:"rangeEnd"`
		} `json:"ipam"`
		Policies []struct {
			Name  string `json:"name"`
			Value struct {
				Type     string         `json:"type"`
				Settings map[string]any `json:"settings"`
			} `json:"value"`
		} `json:"policies"`
		Capabilities map[string]bool `json:"capabilities"`
	}
	strictDecode(t, file(t, plan, CNIConfigPath).Content, &c)
	g.Expect(c.Type).To(Equal("win-overlay"))
	g.Expect(c.Name).To(Equal(HybridOverlayNetwork), "win-overlay finds the HNS network by this name")
	g.Expect(c.IPAM.Subnet).To(Equal("10.132.4.0/24"))
	g.Expect(c.Capabilities).To(HaveKeyWithValue("portMappings", true))

	byType := map[string]map[string]any{}
	for _, p := range c.Policies {
		g.Expect(p.Name).To(Equal("EndpointPolicy"))
		byType[p.Value.Type] = p.Value.Settings
	}
	g.Expect(byType["OutBoundNAT"]["Exceptions"]).To(ConsistOf("10.132.0.0/14", "172.30.0.0/16"))
	g.Expect(byType["SDNRoute"]).To(Equal(map[string]any{"destinationPrefix": "172.30.0.0/16", "needEncap": true}))
	g.Expect(byType["ProviderAddress"]).To(Equal(map[string]any{"providerAddress": "10.0.12.34"}))

	// kube-proxy's source VIP is in the host subnet, outside the pods' range.
	var kp kubeproxyv1alpha1.KubeProxyConfiguration
	strictDecode(t, file(t, plan, KubeProxyConfigPath).Content, &kp)
	vip := netip.MustParseAddr(kp.Winkernel.SourceVip)
	g.Expect(netip.MustParsePrefix(c.IPAM.Subnet).Contains(vip)).To(BeTrue())
	g.Expect(netip.MustParseAddr(c.IPAM.RangeEnd).Less(vip)).To(BeTrue())
}

func TestSourceVIP(t *testing.T) {
	for subnet, want := range map[string][2]string{
		"10.132.4.0/24": {"10.132.4.254", "10.132.4.253"},
		"10.132.8.0/23": {"10.132.9.254", "10.132.9.253"},
		"10.0.0.0/29":   {"10.0.0.6", "10.0.0.5"},
		"10.128.0.0/14": {"10.131.255.254", "10.131.255.253"},
	} {
		vip, last := sourceVIP(netip.MustParsePrefix(subnet))
		NewWithT(t).Expect([2]string{vip.String(), last.String()}).To(Equal(want), subnet)
	}
}

func TestHostSubnetMissing(t *testing.T) {
	g := NewWithT(t)
	in := testInputs(t)
	in.HostSubnet = ""
	plan := mustRender(t, in)
	g.Expect(hasFile(plan, CNIConfigPath)).To(BeFalse())
	g.Expect(hasFile(plan, KubeProxyConfigPath)).To(BeFalse())
	g.Expect(serviceNames(plan)).NotTo(ContainElement(ServiceKubeProxy))
	g.Expect(serviceNames(plan)).To(ContainElement(ServiceHybridOverlay), "hybrid-overlay must run for the subnet to be assigned")
	g.Expect(plan.Networks).To(Equal([]string{HybridOverlayNetwork, BaseHybridOverlayNetwork}))
}

func TestNetworkNone(t *testing.T) {
	g := NewWithT(t)
	in := testInputs(t)
	in.Config.Network = wmcov1alpha1.NetworkSpec{Type: wmcov1alpha1.NetworkNone}
	in.HostSubnet = ""
	in.Cluster.ClusterNetworkCIDR = ""
	plan := mustRender(t, in)
	g.Expect(hasFile(plan, CNIConfigPath)).To(BeFalse())
	g.Expect(hasFile(plan, KubeProxyConfigPath)).To(BeFalse())
	g.Expect(plan.Networks).To(BeEmpty())
	g.Expect(serviceNames(plan)).To(Equal([]string{
		"containerd", "csi-proxy", "windows-instance-config-daemon", "windows_exporter", "kubelet",
	}))
	// IPv6 node and DNS addresses are fine without the hybrid overlay.
	in.Host.Addresses = []string{"fd00::1234"}
	in.Cluster.DNSIP = "fd00:30::a"
	in.Cluster.ServiceCIDR = "fd00:30::/108"
	_, err := Render(in)
	g.Expect(err).NotTo(HaveOccurred())
}

// tomlLine is what a line of our TOML may be: blank, a comment, a table
// header, or key = string / integer / array of strings.
var tomlLine = regexp.MustCompile(`^(|#.*|\[[A-Za-z0-9_."\-/:\\]+\]|\s*[a-z_]+ = ("([^"\\]|\\[\\"])*"|[0-9]+|\[("([^"\\]|\\[\\"])*"(, )?)*\]))$`)

func TestContainerdConfig(t *testing.T) {
	g := NewWithT(t)
	in := testInputs(t)
	in.Config.Containerd = wmcov1alpha1.ContainerdSpec{
		PauseImage: "mirror.example.com/pause:3.10",
		RegistryMirrors: []wmcov1alpha1.RegistryMirror{
			{Registry: "Registry.Local:5000", Endpoints: []string{"http://10.0.0.5:5000"}},
			{Registry: "docker.io", Endpoints: []string{"https://b.example.com", "https://a.example.com/v2-proxy"}},
		},
	}
	plan := mustRender(t, in)
	conf := string(file(t, plan, ContainerdConfigPath).Content)
	g.Expect(conf).To(ContainSubstring(`sandbox_image = "mirror.example.com/pause:3.10"`))
	// The plugins are copied out of the versioned payload directory, so
	// that containerd's configuration is the same for every version.
	g.Expect(conf).To(ContainSubstring(`bin_dir = "C:\\k\\cni\\bin"`))
	g.Expect(conf).NotTo(ContainSubstring(`payload`))
	g.Expect(plan.Copies).To(ContainElement(wicdapi.Copy{From: `C:\k\payload\v1.37.2-wmco.1\cni\win-overlay.exe`, To: `C:\k\cni\bin\win-overlay.exe`}))
	g.Expect(conf).To(ContainSubstring(`conf_dir = "C:\\k\\cni\\config"`))
	g.Expect(conf).To(ContainSubstring(`config_path = "C:\\k\\containerd\\certs.d"`))
	g.Expect(conf).To(ContainSubstring(`address = "\\\\.\\pipe\\containerd-containerd"`))

	docker := string(file(t, plan, `C:\k\containerd\certs.d\docker.io\hosts.toml`).Content)
	g.Expect(strings.Index(docker, `[host."https://b.example.com"]`)).To(BeNumerically("<", strings.Index(docker, `[host."https://a.example.com/v2-proxy"]`)),
		"mirrors keep their order")
	local := string(file(t, plan, `C:\k\containerd\certs.d\registry.local_5000_\hosts.toml`).Content)
	g.Expect(local).To(ContainSubstring(`[host."http://10.0.0.5:5000"]`))
	g.Expect(plan.Directories).To(ContainElements(`C:\k\containerd\certs.d\docker.io`, `C:\k\containerd\certs.d\registry.local_5000_`))

	for _, f := range plan.Files {
		if !strings.HasSuffix(f.Path, ".toml") {
			continue
		}
		for _, l := range strings.Split(strings.TrimSuffix(string(f.Content), "\n"), "\n") {
			g.Expect(tomlLine.MatchString(l)).To(BeTrue(), "%s: %q", f.Path, l)
		}
	}
}

func TestTOMLString(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:        `"plain"`,
		`C:\k`:         `"C:\\k"`,
		`say "hi"`:     `"say \"hi\""`,
		"a\nb\tc\rd":   `"a\nb\tc\rd"`,
		"bell\x07\x7f": `"bell\u0007\u007F"`,
		"unicode é":    `"unicode é"`,
		`\\.\pipe\x`:   `"\\\\.\\pipe\\x"`,
		`ends with \`:  `"ends with \\"`,
		"quote\"and\\": `"quote\"and\\"`,
	} {
		NewWithT(t).Expect(tomlString(in)).To(Equal(want), in)
	}
}

func TestHostFactsFrom(t *testing.T) {
	g := NewWithT(t)
	f := wicdapi.Facts{Hostname: "h", OSBuild: 20348, Addresses: []string{"10.0.0.1"}, FreeDiskBytes: 1}
	got := HostFactsFrom(f)
	g.Expect(got).To(Equal(HostFacts{Hostname: "h", OSBuild: 20348, Addresses: []string{"10.0.0.1"}}))
	got.Addresses[0] = "x"
	g.Expect(f.Addresses[0]).To(Equal("10.0.0.1"), "a copy")
}

func TestUsesPayloadVersion(t *testing.T) {
	g := NewWithT(t)
	in := testInputs(t)
	in.Payload.Version = "v1.36.0-wmco.7"
	in.Payload.KubernetesVersion = "v1.36.0"
	plan := mustRender(t, in)
	g.Expect(plan.PayloadVersion).To(Equal("v1.36.0-wmco.7"))
	for _, s := range plan.Services {
		if s.Name != wicdapi.AgentServiceName {
			g.Expect(s.Binary).To(HavePrefix(payload.HostDir("v1.36.0-wmco.7")+`\`), s.Name)
		}
	}
}

func TestMaxUnavailable(t *testing.T) {
	g := NewWithT(t)
	spec := func(v intstr.IntOrString) wmcov1alpha1.WindowsNodeConfigSpec {
		return wmcov1alpha1.WindowsNodeConfigSpec{MaxUnavailable: &v}
	}
	for _, tc := range []struct {
		name      string
		spec      wmcov1alpha1.WindowsNodeConfigSpec
		instances int
		want      int
	}{
		{"default of 8 hosts", wmcov1alpha1.WindowsNodeConfigSpec{}, 8, 2},
		{"default of 3 hosts is at least 1", wmcov1alpha1.WindowsNodeConfigSpec{}, 3, 1},
		{"default of none", wmcov1alpha1.WindowsNodeConfigSpec{}, 0, 1},
		{"a number", spec(intstr.FromInt32(2)), 6, 2},
		{"a number above the hosts", spec(intstr.FromInt32(9)), 6, 9},
		{"a percentage rounds down", spec(intstr.FromString("50%")), 5, 2},
		{"100%", spec(intstr.FromString("100%")), 7, 7},
		{"a malformed percentage", spec(intstr.FromString("x%")), 7, 1},
	} {
		g.Expect(MaxUnavailable(tc.spec, tc.instances)).To(Equal(tc.want), tc.name)
	}
}
