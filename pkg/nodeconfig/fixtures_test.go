/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/apimachinery/pkg/util/intstr"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/payload"
)

// testToken is a fake bootstrap token; tests check it never leaks.
const testToken = "abcdef.0123456789abcdef"

// testCA is a fixed self-signed CA (testdata/ca.crt), so goldens are
// stable.
func testCA(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// testManifest is a valid payload manifest with made-up checksums.
func testManifest() *payload.Manifest {
	m := &payload.Manifest{Version: "v1.37.2-wmco.1", KubernetesVersion: "v1.37.2"}
	for _, c := range payload.Components() {
		for _, p := range payload.RequiredFiles(c) {
			m.Files = append(m.Files, payload.File{Path: p, Component: c, Size: 1024, SHA256: strings.Repeat("0", 64)})
		}
	}
	return m
}

// apiDefaultedSpec is the spec as the API server returns it for an empty
// WindowsNodeConfig: every default applied.
func apiDefaultedSpec() wmcov1alpha1.WindowsNodeConfigSpec {
	mu := intstr.FromString("25%")
	return wmcov1alpha1.WindowsNodeConfigSpec{
		Network:                   wmcov1alpha1.NetworkSpec{Type: wmcov1alpha1.NetworkOVNHybridOverlay},
		Taints:                    []wmcov1alpha1.NodeTaint{{Key: "os", Value: "Windows", Effect: "NoSchedule"}},
		MaxParallelConfigurations: 50,
		MaxUnavailable:            &mu,
		UpgradeTimeout:            &metav1.Duration{Duration: 10 * time.Minute},
		LogRotation:               wmcov1alpha1.LogRotationSpec{MaxFileSizeMiB: 100, MaxAgeDays: 7, MaxFiles: 10},
		Containerd:                wmcov1alpha1.ContainerdSpec{PauseImage: "registry.k8s.io/pause:3.10"},
	}
}

// testInputs are valid inputs for an OVNHybridOverlay node on Windows
// Server 2022 whose host subnet is known.
func testInputs(t testing.TB) Inputs {
	return Inputs{
		Config: apiDefaultedSpec(),
		Cluster: ClusterFacts{
			APIServerURL:       "https://api.cluster.example.com:6443",
			CACertPEM:          testCA(t),
			ServiceCIDR:        "172.30.0.0/16",
			ClusterNetworkCIDR: "10.132.0.0/14",
			DNSIP:              "172.30.0.10",
			KubernetesVersion:  "v1.37.2",
		},
		Host: HostFacts{
			Hostname:  "WIN-2022-A",
			OSBuild:   OSBuildServer2022,
			Addresses: []string{"10.0.12.34", "fd00::1234"},
		},
		NodeName:       "win-2022-a",
		Payload:        testManifest(),
		BootstrapToken: testToken,
		NodeLabels:     map[string]string{"topology.kubernetes.io/zone": "zone-a", "wmco.io/managed": "true"},
		HostSubnet:     "10.132.4.0/24",
	}
}
