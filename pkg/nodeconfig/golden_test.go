/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json from the current output")

// goldenPlan is a wicdapi.Plan with file contents as lines of text
// instead of base64, so that golden files are readable and diffs useful.
type goldenPlan struct {
	SchemaVersion      int                    `json:"schemaVersion"`
	PayloadVersion     string                 `json:"payloadVersion"`
	NodeName           string                 `json:"nodeName"`
	Directories        []string               `json:"directories"`
	Files              []goldenFile           `json:"files"`
	Copies             []wicdapi.Copy         `json:"copies"`
	Services           []wicdapi.Service      `json:"services"`
	Networks           []string               `json:"networks"`
	HostNetworks       []wicdapi.HostNetwork  `json:"hostNetworks,omitempty"`
	FirewallRules      []wicdapi.FirewallRule `json:"firewallRules"`
	DefenderExclusions []string               `json:"defenderExclusions"`
	StepTimeoutSeconds int                    `json:"stepTimeoutSeconds"`
	// TrustedRootCertificates as lines of PEM each.
	TrustedRootCertificates [][]string `json:"trustedRootCertificates,omitempty"`
}

type goldenFile struct {
	Path      string   `json:"path"`
	Sensitive bool     `json:"sensitive,omitempty"`
	Content   []string `json:"content"`
}

func toGolden(p *wicdapi.Plan) goldenPlan {
	g := goldenPlan{
		SchemaVersion:      p.SchemaVersion,
		PayloadVersion:     p.PayloadVersion,
		NodeName:           p.NodeName,
		Directories:        p.Directories,
		Copies:             p.Copies,
		Services:           p.Services,
		Networks:           p.Networks,
		HostNetworks:       p.HostNetworks,
		FirewallRules:      p.FirewallRules,
		DefenderExclusions: p.DefenderExclusions,
		StepTimeoutSeconds: p.StepTimeoutSeconds,
	}
	for _, c := range p.TrustedRootCertificates {
		g.TrustedRootCertificates = append(g.TrustedRootCertificates, strings.Split(strings.TrimSuffix(c, "\n"), "\n"))
	}
	for _, f := range p.Files {
		g.Files = append(g.Files, goldenFile{
			Path:      f.Path,
			Sensitive: f.Sensitive,
			Content:   strings.Split(strings.TrimSuffix(string(f.Content), "\n"), "\n"),
		})
	}
	return g
}

// goldenCases are the inputs of testdata/golden/<name>.json.
var goldenCases = map[string]func(in *Inputs){
	// The default configuration on each supported Windows build.
	"ovn-hybrid-overlay-20348": func(*Inputs) {},
	"ovn-hybrid-overlay-17763": func(in *Inputs) {
		in.Host.OSBuild = OSBuildServer2019
		in.NodeName, in.Host.Hostname, in.Host.Addresses = "win-2019-a", "WIN-2019-A", []string{"10.0.12.19"}
		in.HostSubnet = "10.132.5.0/24"
	},
	"ovn-hybrid-overlay-26100": func(in *Inputs) {
		in.Host.OSBuild = OSBuildServer2025
		in.NodeName, in.Host.Hostname, in.Host.Addresses = "win-2025-a", "WIN-2025-A", []string{"10.0.12.25"}
		in.HostSubnet = "10.132.6.0/24"
	},
	// Before OVN-Kubernetes assigned the node's pod subnet.
	"ovn-hybrid-overlay-no-host-subnet": func(in *Inputs) { in.HostSubnet = "" },
	// Pod networking left to something else.
	"network-none": func(in *Inputs) {
		in.Config.Network = wmcov1alpha1.NetworkSpec{Type: wmcov1alpha1.NetworkNone}
		in.HostSubnet = ""
		in.Cluster.ClusterNetworkCIDR = ""
	},
	// Taints, registry mirrors, log rotation and the other knobs set.
	"custom": func(in *Inputs) {
		port := int32(9898)
		in.Config.Network.VXLANPort = &port
		in.Config.Network.DNSServer = "172.30.0.53"
		in.Config.Taints = []wmcov1alpha1.NodeTaint{
			{Key: "os", Value: "Windows", Effect: "NoSchedule"},
			{Key: "example.com/dedicated", Value: "windows-gpu", Effect: "NoExecute"},
			{Key: "example.com/spot", Effect: "PreferNoSchedule"},
		}
		in.Config.LogRotation = wmcov1alpha1.LogRotationSpec{MaxFileSizeMiB: 25, MaxAgeDays: 30}
		in.Config.Containerd = wmcov1alpha1.ContainerdSpec{
			PauseImage: "mirror.example.com/k8s/pause:3.10",
			RegistryMirrors: []wmcov1alpha1.RegistryMirror{
				{Registry: "registry.internal:5000", Endpoints: []string{"http://10.0.0.5:5000"}},
				{Registry: "docker.io", Endpoints: []string{"https://mirror-a.example.com", "https://mirror-b.example.com/dockerhub"}},
			},
		}
		in.Cluster.Domain = "corp.example"
		in.NodeLabels["example.com/team"] = "payments"
		in.HostSubnet = "10.132.8.0/23"
	},
	// A cloud controller manager initialises the Node (AWS, Azure, vSphere).
	"cloud-provider-external": func(in *Inputs) {
		in.CloudProvider = CloudProviderExternal
		in.NodeName = "ip-10-0-12-34.ec2.internal"
	},
	// An OpenShift cluster's settings: pod networks, VXLAN port, proxy,
	// trusted CAs, kubelet client CA, image digest and tag mirrors.
	"openshift-cluster-settings": withOpenShiftSettings,
	// The same features on plain Kubernetes through WindowsNodeConfig (the
	// trusted CA bundle read from the ConfigMap it names).
	"config-proxy-trusted-ca-mirrors": func(in *Inputs) {
		in.Config.Proxy = &wmcov1alpha1.ProxySpec{HTTPProxy: "http://user:password@proxy.local:3128", HTTPSProxy: "http://user:password@proxy.local:3128"}
		in.Config.Containerd.RegistryMirrors = []wmcov1alpha1.RegistryMirror{
			{Registry: "docker.io", Endpoints: []string{"https://mirror-a.example.com", "https://mirror-b.example.com"}, NeverContactSource: true},
		}
		bundle, err := os.ReadFile("testdata/trusted-ca.pem")
		if err != nil {
			panic(err)
		}
		in.Cluster.TrustedCAPEM = bundle
	},
	// Flannel (plain Kubernetes with kube-flannel): VXLAN and host-gw on
	// every supported build, and before node IPAM assigned the podCIDR.
	"flannel-vxlan-17763":   flannelCase(withFlannel, OSBuildServer2019),
	"flannel-vxlan-20348":   flannelCase(withFlannel, OSBuildServer2022),
	"flannel-vxlan-26100":   flannelCase(withFlannel, OSBuildServer2025),
	"flannel-host-gw-17763": flannelCase(withFlannelHostGW, OSBuildServer2019),
	"flannel-host-gw-20348": flannelCase(withFlannelHostGW, OSBuildServer2022),
	"flannel-host-gw-26100": flannelCase(withFlannelHostGW, OSBuildServer2025),
	"flannel-no-pod-cidr": func(in *Inputs) {
		withFlannel(in)
		in.HostSubnet = ""
	},
	// An explicitly empty taint list: no taint at all.
	"no-taints": func(in *Inputs) { in.Config.Taints = []wmcov1alpha1.NodeTaint{} },
}

func TestGolden(t *testing.T) {
	for name, mutate := range goldenCases {
		t.Run(name, func(t *testing.T) {
			in := testInputs(t)
			mutate(&in)
			plan, err := Render(in)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(toGolden(plan)); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "golden", name+".json")
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./pkg/nodeconfig -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("plan differs from %s (run with -update to accept):\n%s", path, lineDiff(string(want), buf.String()))
			}
		})
	}
}

// lineDiff shows the first lines where two texts differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for i := 0; i < max(len(w), len(g)) && len(out) < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			out = append(out, "line "+strconv.Itoa(i+1)+":\n  want: "+wl+"\n  got:  "+gl)
		}
	}
	return strings.Join(out, "\n")
}

// withFlannel makes the inputs a plain-Kubernetes node with network type
// Flannel (VXLAN, the defaults) whose podCIDR is known, kube-flannel's
// net-conf.json read from the cluster.
func withFlannel(in *Inputs) {
	in.Config.Network = wmcov1alpha1.NetworkSpec{Type: wmcov1alpha1.NetworkFlannel}
	in.Cluster.ServiceCIDR, in.Cluster.DNSIP = "10.96.0.0/12", "10.96.0.10"
	in.Cluster.Flannel = FlannelFacts{Source: "kube-flannel/kube-flannel-cfg", Network: "10.132.0.0/14", Backend: FlannelBackendTypeVXLAN, VNI: 4096, Port: 4789}
	in.Payload = withFlannelPayload(in.Payload, true)
}

// withFlannelHostGW is withFlannel with the host-gw backend set in the
// config.
func withFlannelHostGW(in *Inputs) {
	withFlannel(in)
	in.Config.Network.Flannel = &wmcov1alpha1.FlannelSpec{Backend: wmcov1alpha1.FlannelBackendHostGW}
	in.Cluster.Flannel = FlannelFacts{Source: "kube-flannel/kube-flannel-cfg", Network: "10.132.0.0/14", Backend: FlannelBackendTypeHostGW}
}

// withFlannelPayload adds flanneld, and win-bridge if bridge, to a
// manifest.
func withFlannelPayload(m *payload.Manifest, bridge bool) *payload.Manifest {
	out := *m
	out.Files = append(slices.Clone(m.Files), payload.File{Path: payload.FlanneldPath, Component: payload.ComponentFlannel, Size: 1024, SHA256: strings.Repeat("1", 64)})
	if bridge {
		out.Files = append(out.Files, payload.File{Path: payload.CNIWinBridgePath, Component: payload.ComponentCNI, Size: 1024, SHA256: strings.Repeat("2", 64)})
	}
	return &out
}

// flannelCase is a golden case of a flannel backend on a Windows build.
func flannelCase(backend func(*Inputs), build int) func(*Inputs) {
	return func(in *Inputs) {
		backend(in)
		in.Host.OSBuild = build
		name := "win-" + strconv.Itoa(build)
		in.NodeName, in.Host.Hostname, in.Host.Addresses = name, strings.ToUpper(name), []string{"10.0.12.7"}
		in.HostSubnet = "10.132.7.0/24"
	}
}
