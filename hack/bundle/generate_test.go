package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/operator-framework/api/pkg/operators/v1alpha1"
	"sigs.k8s.io/yaml"
)

// The generator's tests render a small configuration of their own (the
// repository's CRDs and samples, a Deployment and the RBAC under test), so
// that they hold whatever state config/rbac is in.

const fixtureManager = `apiVersion: v1
kind: Namespace
metadata:
  name: wmco-system
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: wmco
  namespace: wmco-system
  labels: {app.kubernetes.io/name: wmco}
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: wmco}
  template:
    metadata:
      labels: {app.kubernetes.io/name: wmco}
    spec:
      serviceAccountName: wmco
      containers:
      - name: manager
        image: controller:latest
        resources:
          requests: {cpu: 50m, memory: 128Mi}
          limits: {memory: 512Mi}
---
apiVersion: v1
kind: Service
metadata:
  name: wmco-metrics
  namespace: wmco-system
spec:
  selector: {app.kubernetes.io/name: wmco}
  ports:
  - {name: metrics, port: 8443, targetPort: metrics}
`

// fixtureRBAC is what the operator's RBAC looks like without kube-system:
// a Role in its namespace, a ClusterRole, and a ClusterRole for others.
const fixtureRBAC = `apiVersion: v1
kind: ServiceAccount
metadata:
  name: wmco
  namespace: wmco-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: wmco-manager
rules:
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: wmco-manager
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: wmco-manager}
subjects:
- {kind: ServiceAccount, name: wmco, namespace: wmco-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: wmco-manager
  namespace: wmco-system
rules:
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: wmco-manager
  namespace: wmco-system
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: wmco-manager}
subjects:
- {kind: ServiceAccount, name: wmco, namespace: wmco-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: wmco-viewer
  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules:
- apiGroups: [wmco.io]
  resources: [windowsinstances, windowsnodeconfigs]
  verbs: [get, list, watch]
`

// fixture writes a repository root whose config/ holds the repository's
// CRDs and samples, fixtureManager and the given RBAC.
func fixture(t *testing.T, rbac string) options {
	t.Helper()
	root := t.TempDir()
	src := repoRoot(t)
	for _, d := range []string{"crd", "samples"} {
		if err := os.CopyFS(filepath.Join(root, "config", d), os.DirFS(filepath.Join(src, "config", d))); err != nil {
			t.Fatal(err)
		}
	}
	put := func(name, content string) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	put("config/default/kustomization.yaml", "resources: [../crd, ../rbac, ../manager]\n")
	put("config/manager/kustomization.yaml", "resources: [manager.yaml]\n")
	put("config/manager/manager.yaml", fixtureManager)
	put("config/rbac/kustomization.yaml", "resources: [rbac.yaml]\n")
	put("config/rbac/rbac.yaml", rbac)
	return options{Root: root, Version: "1.2.3", Image: "example.com/wmco:v1.2.3", Package: "openwmco",
		Channels: []string{"candidate", "stable"}, DefaultChannel: "stable", MinKubeVersion: "1.37.0"}
}

func readCSV(t *testing.T, fs files) *v1alpha1.ClusterServiceVersion {
	t.Helper()
	b, ok := fs["bundle/manifests/openwmco.clusterserviceversion.yaml"]
	if !ok {
		t.Fatalf("no CSV among %v", fs.names())
	}
	csv := &v1alpha1.ClusterServiceVersion{}
	if err := yaml.UnmarshalStrict(b, csv); err != nil {
		t.Fatal(err)
	}
	return csv
}

func TestGenerateMapsRBACToPermissions(t *testing.T) {
	fs, err := generate(fixture(t, fixtureRBAC))
	if err != nil {
		t.Fatal(err)
	}
	csv := readCSV(t, fs)
	spec := csv.Spec.InstallStrategy.StrategySpec
	if len(spec.Permissions) != 1 || spec.Permissions[0].ServiceAccountName != "wmco" ||
		spec.Permissions[0].Rules[0].Resources[0] != "secrets" {
		t.Errorf("permissions = %+v, want the Role's secrets rule for wmco", spec.Permissions)
	}
	if len(spec.ClusterPermissions) != 1 || spec.ClusterPermissions[0].Rules[0].Resources[0] != "nodes" {
		t.Errorf("clusterPermissions = %+v, want the bound ClusterRole's nodes rule", spec.ClusterPermissions)
	}
	// The ClusterRole bound to nobody is shipped for admins to bind; the
	// bound one is not (OLM creates it from clusterPermissions).
	if _, ok := fs["bundle/manifests/wmco-viewer_rbac.authorization.k8s.io_v1_clusterrole.yaml"]; !ok {
		t.Errorf("unbound ClusterRole wmco-viewer not shipped: %v", fs.names())
	}
	for name := range fs {
		if strings.Contains(name, "wmco-manager") || strings.Contains(name, "binding") || strings.Contains(name, "namespace") {
			t.Errorf("bundle ships %s; OLM creates the operator's RBAC and namespace itself", name)
		}
	}
	svc := string(fs["bundle/manifests/wmco-metrics_v1_service.yaml"])
	if svc == "" || strings.Contains(svc, "namespace:") {
		t.Errorf("metrics Service missing or namespaced:\n%s", svc)
	}
	if d := spec.DeploymentSpecs; len(d) != 1 || d[0].Spec.Template.Spec.Containers[0].Image != "example.com/wmco:v1.2.3" {
		t.Errorf("deployment = %+v, want the release image", d)
	}
	ann := string(fs["bundle/metadata/annotations.yaml"])
	for _, want := range []string{"bundle.channels.v1: candidate,stable\n", "bundle.channel.default.v1: stable\n", "bundle.package.v1: openwmco\n"} {
		if !strings.Contains(ann, want) || !strings.Contains(string(fs["bundle.Dockerfile"]), strings.Replace(strings.TrimSpace(want), ": ", "=", 1)) {
			t.Errorf("annotations.yaml and bundle.Dockerfile should both say %q:\n%s\n%s", want, ann, fs["bundle.Dockerfile"])
		}
	}
}

func TestGenerateFollowsRenamedAndAddedRoles(t *testing.T) {
	rbac := strings.ReplaceAll(fixtureRBAC, "name: wmco-manager", "name: wmco-leader-election") + `---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: wmco-inventory
  namespace: wmco-system
rules:
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [windows-instances]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: wmco-inventory
  namespace: wmco-system
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: wmco-inventory}
subjects:
- {kind: ServiceAccount, name: wmco}
`
	fs, err := generate(fixture(t, rbac))
	if err != nil {
		t.Fatal(err)
	}
	perms := readCSV(t, fs).Spec.InstallStrategy.StrategySpec.Permissions
	var resources []string
	for _, p := range perms {
		resources = append(resources, p.Rules[0].Resources...)
	}
	if strings.Join(resources, ",") != "configmaps,secrets" {
		t.Errorf("permissions cover %v, want configmaps and secrets from both Roles", resources)
	}
}

func TestGenerateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, rbac, want string
	}{{
		name: "Role in a foreign namespace",
		rbac: fixtureRBAC + `---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: wmco-manager, namespace: kube-system}
rules:
- apiGroups: [""]
  resources: [secrets]
  verbs: [create]
`,
		want: "Role kube-system/wmco-manager is outside the operator's namespace wmco-system",
	}, {
		name: "RoleBinding in a foreign namespace",
		rbac: fixtureRBAC + `---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: wmco-reader, namespace: kube-public}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: wmco-viewer}
subjects:
- {kind: ServiceAccount, name: wmco, namespace: wmco-system}
`,
		want: "RoleBinding kube-public/wmco-reader is outside the operator's namespace",
	}, {
		name: "Role without a namespace",
		rbac: strings.Replace(fixtureRBAC, "kind: Role\nmetadata:\n  name: wmco-manager\n  namespace: wmco-system\n", "kind: Role\nmetadata:\n  name: wmco-manager\n", 1),
		want: "Role wmco-manager is outside the operator's namespace",
	}, {
		name: "binding for another subject",
		rbac: fixtureRBAC + `---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: prometheus-reads-wmco}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: wmco-viewer}
subjects:
- {kind: ServiceAccount, name: prometheus-k8s, namespace: openshift-monitoring}
`,
		want: "ClusterRoleBinding prometheus-reads-wmco binds ServiceAccount openshift-monitoring/prometheus-k8s",
	}, {
		name: "Role bound to nothing",
		rbac: fixtureRBAC + `---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: orphan, namespace: wmco-system}
rules: []
`,
		want: "Role wmco-system/orphan is bound to nothing",
	}, {
		name: "kind a bundle cannot carry",
		rbac: fixtureRBAC + `---
apiVersion: batch/v1
kind: Job
metadata: {name: setup, namespace: wmco-system}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: setup, image: busybox}]
`,
		want: "Job wmco-system/setup: a registry+v1 bundle cannot carry this kind",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := generate(fixture(t, tc.rbac))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("generate: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestGenerateRefusesMissingResourceRequests(t *testing.T) {
	o := fixture(t, fixtureRBAC)
	p := filepath.Join(o.Root, "config/manager/manager.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), "requests: {cpu: 50m, memory: 128Mi}", "requests: {memory: 128Mi}", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := generate(o); err == nil || !strings.Contains(err.Error(), "needs cpu and memory requests") {
		t.Fatalf("generate: %v, want the missing cpu request refused", err)
	}
}

func TestDescriptorPathsMustExist(t *testing.T) {
	saved := owned["WindowsInstance"]
	t.Cleanup(func() { owned["WindowsInstance"] = saved })
	d := saved
	d.Spec = append(append([]v1alpha1.SpecDescriptor{}, saved.Spec...), v1alpha1.SpecDescriptor{Path: "credentialsSecretRef.password"})
	owned["WindowsInstance"] = d
	if _, err := generate(fixture(t, fixtureRBAC)); err == nil || !strings.Contains(err.Error(), `spec descriptor credentialsSecretRef.password: no field "password"`) {
		t.Fatalf("generate: %v, want the stale descriptor refused", err)
	}
}

// TestGenerateIsStable generates twice, and once more after writing and
// regenerating over the first output, and wants the same bytes: `make
// bundle` must not show drift when nothing changed.
func TestGenerateIsStable(t *testing.T) {
	o := fixture(t, fixtureRBAC)
	first, err := generate(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(o.Root, first); err != nil {
		t.Fatal(err)
	}
	// A file left from an object that no longer exists is removed.
	stale := filepath.Join(o.Root, manifestsDir, "gone_v1_service.yaml")
	if err := os.WriteFile(stale, []byte("kind: Service\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	second, err := generate(o)
	if err != nil {
		t.Fatal(err)
	}
	if !first.equal(second) {
		for _, n := range first.names() {
			if string(first[n]) != string(second[n]) {
				t.Errorf("%s differs between two runs", n)
			}
		}
		t.Fatal("two generations differ")
	}
	if err := write(o.Root, second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale %s survived a regeneration: %v", stale, err)
	}
	for _, n := range second.names() {
		b, err := os.ReadFile(filepath.Join(o.Root, n))
		if err != nil || string(b) != string(second[n]) {
			t.Errorf("%s on disk differs from the generation: %v", n, err)
		}
	}
}
