package main

import (
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/blang/semver/v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/operator-framework/api/pkg/lib/version"
	"github.com/operator-framework/api/pkg/operators/v1alpha1"
)

//go:embed description.md
var description string

//go:embed icon.svg
var icon []byte

const repository = "https://github.com/openwmco/wmco"

// installModes are the modes the operator really supports. It acts on
// cluster-scoped objects (WindowsInstances, WindowsNodeConfig, Nodes,
// CSRs) and reads its SSH key Secret, inventory ConfigMap and leader Lease
// from the namespace it runs in ($POD_NAMESPACE), never from OLM's target
// namespaces. So it is installed in its own namespace, targeting that
// namespace: SingleNamespace and MultiNamespace would name namespaces it
// ignores, and AllNamespaces would make OLM turn the namespaced
// permissions (Secrets) into cluster-wide ones.
var installModes = []v1alpha1.InstallMode{
	{Type: v1alpha1.InstallModeTypeOwnNamespace, Supported: true},
	{Type: v1alpha1.InstallModeTypeSingleNamespace, Supported: false},
	{Type: v1alpha1.InstallModeTypeMultiNamespace, Supported: false},
	{Type: v1alpha1.InstallModeTypeAllNamespaces, Supported: false},
}

// features are OpenShift's infrastructure feature annotations, each
// answered for what the operator does today.
var features = map[string]bool{
	// The operator image is referenced by tag, not digest, and the Windows
	// hosts pull the pause image from a registry.
	"disconnected": false,
	// Built with CGO_ENABLED=0: no FIPS-validated crypto module.
	"fips-compliant": false,
	// Proxy settings are not passed to the Windows hosts.
	"proxy-aware": false,
	// The metrics endpoint does not follow the cluster's TLS profile.
	"tls-profiles":     false,
	"token-auth-aws":   false,
	"token-auth-azure": false,
	"token-auth-gcp":   false,
	"cnf":              false,
	"cni":              false,
	"csi":              false,
}

// buildCSV assembles the ClusterServiceVersion.
func buildCSV(o options, in *installation, samples []*unstructured.Unstructured) (*v1alpha1.ClusterServiceVersion, error) {
	v, err := semver.Parse(o.Version)
	if err != nil {
		return nil, fmt.Errorf("-version %q: %w", o.Version, err)
	}
	if _, err := semver.Parse(o.MinKubeVersion); err != nil {
		return nil, fmt.Errorf("-min-kube-version %q: %w", o.MinKubeVersion, err)
	}
	crds, err := ownedCRDs(in.CRDs)
	if err != nil {
		return nil, err
	}
	examples, err := almExamples(samples, crds)
	if err != nil {
		return nil, err
	}
	dep, err := deployment(in, o.Image)
	if err != nil {
		return nil, err
	}

	var supported []string
	annotations := map[string]string{
		"alm-examples":   examples,
		"capabilities":   "Basic Install",
		"categories":     "Modernization & Migration,OpenShift Optional",
		"containerImage": o.Image,
		"description":    "Turns Windows Server hosts into Kubernetes worker nodes over SSH and keeps them configured.",
		"repository":     repository,
		"support":        "openwmco community",
		"operatorframework.io/suggested-namespace": in.Namespace,
	}
	for _, f := range slices.Sorted(maps.Keys(features)) {
		annotations["features.operators.openshift.io/"+f] = fmt.Sprint(features[f])
		if features[f] {
			supported = append(supported, f)
		}
	}
	infra, err := json.Marshal(append([]string{}, supported...))
	if err != nil {
		return nil, err
	}
	// The older form of the same answers, still read by OperatorHub.
	annotations["operators.openshift.io/infrastructure-features"] = string(infra)

	iconData := base64.StdEncoding.EncodeToString(icon)
	csv := &v1alpha1.ClusterServiceVersion{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.ClusterServiceVersionKind},
		ObjectMeta: metav1.ObjectMeta{
			Name:        o.Package + ".v" + v.String(),
			Annotations: annotations,
			Labels: map[string]string{
				"operatorframework.io/arch.amd64": "supported",
				"operatorframework.io/os.linux":   "supported",
			},
		},
		Spec: v1alpha1.ClusterServiceVersionSpec{
			DisplayName: "Windows Machine Config Operator (openwmco)",
			Description: description,
			Keywords:    []string{"windows", "windows-server", "nodes", "ssh", "kubelet", "containerd", "wmco", "byoh"},
			Maintainers: []v1alpha1.Maintainer{{Name: "openwmco maintainers", Email: "maintainers@openwmco.io"}},
			Provider:    v1alpha1.AppLink{Name: "openwmco", URL: repository},
			Links: []v1alpha1.AppLink{
				{Name: "Source code", URL: repository},
				{Name: "Documentation", URL: repository + "#readme"},
			},
			Icon:                      []v1alpha1.Icon{{Data: iconData, MediaType: "image/svg+xml"}},
			Maturity:                  "alpha",
			Version:                   version.OperatorVersion{Version: v},
			MinKubeVersion:            o.MinKubeVersion,
			Replaces:                  o.Replaces,
			InstallModes:              installModes,
			CustomResourceDefinitions: v1alpha1.CustomResourceDefinitions{Owned: crds},
			RelatedImages:             []v1alpha1.RelatedImage{{Name: "operator", Image: o.Image}},
			InstallStrategy: v1alpha1.NamedInstallStrategy{
				StrategyName: v1alpha1.InstallStrategyNameDeployment,
				StrategySpec: v1alpha1.StrategyDetailsDeployment{
					DeploymentSpecs:    []v1alpha1.StrategyDeploymentSpec{dep},
					Permissions:        in.Permissions,
					ClusterPermissions: in.ClusterPermissions,
				},
			},
		},
	}
	return csv, nil
}

// deployment is the operator's Deployment as OLM installs it: no namespace
// (OLM's), the image of this release on the manager container.
func deployment(in *installation, image string) (v1alpha1.StrategyDeploymentSpec, error) {
	d := in.Deployment.DeepCopy()
	spec := &d.Spec.Template.Spec
	i := slices.IndexFunc(spec.Containers, func(c corev1.Container) bool { return c.Name == "manager" })
	if i < 0 {
		return v1alpha1.StrategyDeploymentSpec{}, fmt.Errorf("the Deployment %s has no container named manager", d.Name)
	}
	c := &spec.Containers[i]
	c.Image = image
	for _, c := range spec.Containers {
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			return v1alpha1.StrategyDeploymentSpec{}, fmt.Errorf("the Deployment %s: container %s needs cpu and memory requests and a memory limit (config/manager)", d.Name, c.Name)
		}
	}
	return v1alpha1.StrategyDeploymentSpec{Name: d.Name, Spec: d.Spec, Label: d.Labels}, nil
}

// almExamples is the alm-examples annotation: the samples of the owned
// kinds, sorted by kind, as a JSON array.
func almExamples(samples []*unstructured.Unstructured, crds []v1alpha1.CRDDescription) (string, error) {
	kinds := map[string]bool{}
	for _, c := range crds {
		kinds[c.Kind] = true
	}
	var out []map[string]any
	seen := map[string]bool{}
	for _, s := range samples {
		if !kinds[s.GetKind()] {
			continue
		}
		seen[s.GetKind()] = true
		out = append(out, s.Object)
	}
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		if !seen[k] {
			return "", fmt.Errorf("config/samples holds no %s: alm-examples needs one of each owned kind", k)
		}
	}
	slices.SortStableFunc(out, func(a, b map[string]any) int {
		return strings.Compare(fmt.Sprint(a["kind"]), fmt.Sprint(b["kind"]))
	})
	j, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return "", err
	}
	return string(j), nil
}
