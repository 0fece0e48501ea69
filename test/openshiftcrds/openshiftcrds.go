// Package openshiftcrds installs OpenShift's own CustomResourceDefinitions
// into a test control plane, read from the github.com/openshift/api module
// the repository pins (its directory in the module cache), so tests run
// against the schemas a real OpenShift cluster serves rather than copies.
// Add a CRD by adding its file to Files.
package openshiftcrds

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"k8s.io/client-go/rest"

	"github.com/openwmco/wmco/test/localcluster"
	"github.com/openwmco/wmco/test/proc"
)

// Module is the Go module the CRDs come from.
const Module = "github.com/openshift/api"

// The CRD manifests, relative to the module's directory. Where the API has
// one manifest per feature set, the Default one is what a cluster without
// feature gates serves.
const (
	// Machine is machines.machine.openshift.io.
	Machine = "machine/v1beta1/zz_generated.crd-manifests/0000_10_machine-api_01_machines-Default.crd.yaml"
	// MachineSet is machinesets.machine.openshift.io.
	MachineSet = "machine/v1beta1/zz_generated.crd-manifests/0000_10_machine-api_01_machinesets-Default.crd.yaml"
	// Infrastructure is infrastructures.config.openshift.io.
	Infrastructure = "config/v1/zz_generated.crd-manifests/0000_10_config-operator_01_infrastructures-Default.crd.yaml"
	// Network is networks.config.openshift.io: the cluster's pod and
	// service networks and its network type.
	Network = "config/v1/zz_generated.crd-manifests/0000_10_config-operator_01_networks-Default.crd.yaml"
	// OperatorNetwork is networks.operator.openshift.io: the Cluster
	// Network Operator's configuration (OVN-Kubernetes' hybrid overlay).
	OperatorNetwork = "operator/v1/zz_generated.crd-manifests/0000_70_network_01_networks-Default.crd.yaml"
	// Proxy is proxies.config.openshift.io (one manifest for every
	// feature set).
	Proxy = "config/v1/zz_generated.crd-manifests/0000_03_config-operator_01_proxies.crd.yaml"
	// ImageDigestMirrorSet is imagedigestmirrorsets.config.openshift.io
	// (one manifest for every feature set).
	ImageDigestMirrorSet = "config/v1/zz_generated.crd-manifests/0000_10_config-operator_01_imagedigestmirrorsets.crd.yaml"
	// ImageTagMirrorSet is imagetagmirrorsets.config.openshift.io (one
	// manifest for every feature set).
	ImageTagMirrorSet = "config/v1/zz_generated.crd-manifests/0000_10_config-operator_01_imagetagmirrorsets.crd.yaml"
	// ClusterVersion is clusterversions.config.openshift.io.
	ClusterVersion = "config/v1/zz_generated.crd-manifests/0000_00_cluster-version-operator_01_clusterversions-Default.crd.yaml"
	// DNS is dnses.config.openshift.io.
	DNS = "config/v1/zz_generated.crd-manifests/0000_10_config-operator_01_dnses-Default.crd.yaml"
)

// Files are the manifests Install installs when given none.
var Files = []string{Machine, MachineSet, Infrastructure}

// ClusterConfigFiles are the manifests of the cluster configuration the
// operator reads on OpenShift (see OVNCluster): Install(ctx, cfg,
// ClusterConfigFiles...) after Files.
var ClusterConfigFiles = []string{Infrastructure, Network, OperatorNetwork, Proxy, ImageDigestMirrorSet, ImageTagMirrorSet, ClusterVersion, DNS}

var (
	dirOnce sync.Once
	dir     string
	dirErr  error
)

// Dir is the directory of the pinned github.com/openshift/api module,
// from `go list -m` run in the repository root (the module is in the
// module cache: go.mod requires it).
func Dir() (string, error) {
	dirOnce.Do(func() {
		root, err := proc.RepoRoot()
		if err != nil {
			dirErr = err
			return
		}
		cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", Module)
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			dirErr = fmt.Errorf("go list -m %s: %w: %s", Module, err, strings.TrimSpace(stderr.String()))
			return
		}
		d := strings.TrimSpace(string(out))
		if d == "" {
			dirErr = fmt.Errorf("go list -m %s: the module is not in the module cache (run go mod download)", Module)
			return
		}
		dir = d
	})
	return dir, dirErr
}

// Path is the absolute path of the manifest file (one of the constants,
// or any other path inside the module).
func Path(file string) (string, error) {
	d, err := Dir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(d, filepath.FromSlash(file))
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("openshift CRD %s: %w", file, err)
	}
	return p, nil
}

// AllFiles is Files and ClusterConfigFiles, for a cluster with both the
// Machine API and the cluster configuration (Install skips a file named
// twice).
func AllFiles() []string {
	return append(append([]string(nil), Files...), ClusterConfigFiles...)
}

// Install creates (or updates) the CRDs of files (Files when none are
// given) and waits until each is Established.
func Install(ctx context.Context, cfg *rest.Config, files ...string) error {
	if len(files) == 0 {
		files = Files
	}
	paths := make([]string, len(files))
	for i, f := range files {
		p, err := Path(f)
		if err != nil {
			return err
		}
		paths[i] = p
	}
	return localcluster.InstallCRDFiles(ctx, cfg, paths...)
}
