package wicd

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/payload"
)

// FuzzRenderedPlanIsAccepted renders plans with the operator's
// nodeconfig.Render from fuzzed node names, labels, taints, registry
// mirrors and network settings: every plan Render returns must pass this
// agent's strict decoding and validation and be orderable, or a host would
// refuse what the operator sends it.
func FuzzRenderedPlanIsAccepted(f *testing.F) {
	ca, err := os.ReadFile("../nodeconfig/testdata/ca.crt")
	if err != nil {
		f.Fatal(err)
	}
	m := &payload.Manifest{Version: "v1.37.2-wmco.1", KubernetesVersion: "v1.37.2"}
	for _, c := range payload.Components() {
		for _, p := range payload.RequiredFiles(c) {
			m.Files = append(m.Files, payload.File{Path: p, Component: c, Size: 1, SHA256: strings.Repeat("0", 64)})
		}
	}
	f.Add("win-1", "wmco.io/managed", "true", "os", "Windows", "NoSchedule", "docker.io", "registry.local:5000", "https://m.local", false, "10.132.4.0/24", "")
	f.Add("a.b-c", "", "", "", "", "", "Docker.io", "docker.io", "http://10.0.0.2:80", false, "", "external")
	f.Add("n", "x", "", "k", "", "PreferNoSchedule", "quay.io", "", "https://[fd00::1]:5000/v2", true, "", "")
	f.Fuzz(func(t *testing.T, nodeName, labelKey, labelValue, taintKey, taintValue, taintEffect, mirror1, mirror2, endpoint string,
		networkNone bool, hostSubnet, cloudProvider string) {
		spec := wmcov1alpha1.WindowsNodeConfigSpec{Taints: []wmcov1alpha1.NodeTaint{}}
		if networkNone {
			spec.Network.Type = wmcov1alpha1.NetworkNone
		}
		if taintKey != "" {
			spec.Taints = []wmcov1alpha1.NodeTaint{{Key: taintKey, Value: taintValue, Effect: wmcov1alpha1.TaintEffect(taintEffect)}}
		}
		for _, r := range []string{mirror1, mirror2} {
			if r != "" {
				spec.Containerd.RegistryMirrors = append(spec.Containerd.RegistryMirrors, wmcov1alpha1.RegistryMirror{Registry: r, Endpoints: []string{endpoint}})
			}
		}
		in := nodeconfig.Inputs{
			Config: spec,
			Cluster: nodeconfig.ClusterFacts{APIServerURL: "https://api.example.com:6443", CACertPEM: ca, ServiceCIDR: "172.30.0.0/16",
				ClusterNetworkCIDR: "10.132.0.0/14", DNSIP: "172.30.0.10", KubernetesVersion: "v1.37.2"},
			Host:           nodeconfig.HostFacts{Hostname: "WIN-1", OSBuild: nodeconfig.OSBuildServer2022, Addresses: []string{"10.0.12.34"}},
			NodeName:       nodeName,
			Payload:        m,
			BootstrapToken: "abcdef.0123456789abcdef",
			HostSubnet:     hostSubnet,
			CloudProvider:  cloudProvider,
		}
		if networkNone {
			in.Cluster.ClusterNetworkCIDR = ""
		}
		if labelKey != "" {
			in.NodeLabels = map[string]string{labelKey: labelValue}
		}
		plan, err := nodeconfig.Render(in)
		if err != nil {
			return
		}
		data, err := json.Marshal(plan)
		if err != nil {
			t.Fatalf("marshal the plan: %v", err)
		}
		decoded, err := decodePlan(data)
		if err != nil {
			t.Fatalf("the agent refuses a plan the operator rendered: %v", err)
		}
		if _, err := startOrder(decoded.Services); err != nil {
			t.Fatalf("the agent cannot order the rendered services: %v", err)
		}
	})
}
