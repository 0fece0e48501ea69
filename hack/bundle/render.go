package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/operator-framework/api/pkg/operators/v1alpha1"
)

// render builds a kustomization directory as `kustomize build` would and
// returns its objects in the order kustomize emits them.
func render(dir string) ([]*unstructured.Unstructured, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range rm.Resources() {
		// Through JSON, so that numbers are int64 as in every other
		// unstructured object.
		j, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("kustomize build %s: %s: %w", dir, r.CurId(), err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil {
			return nil, fmt.Errorf("kustomize build %s: %s: %w", dir, r.CurId(), err)
		}
		objs = append(objs, u)
	}
	return objs, nil
}

// installation is what the rendered configuration asks OLM to install,
// sorted into the parts of a bundle.
type installation struct {
	// Namespace is the Deployment's namespace: the operator's own, which
	// OLM replaces by the namespace the operator is installed in.
	Namespace      string
	ServiceAccount string
	Deployment     *appsv1.Deployment
	CRDs           []*apiextv1.CustomResourceDefinition
	CRDObjects     []*unstructured.Unstructured // CRDs as rendered, in the order of CRDs
	// Permissions and ClusterPermissions hold the rules granted to the
	// operator's ServiceAccount, one entry per Role or ClusterRole, sorted
	// by its name.
	Permissions        []v1alpha1.StrategyDeploymentPermissions
	ClusterPermissions []v1alpha1.StrategyDeploymentPermissions
	// Extra are objects OLM installs as they are (namespaced ones in the
	// operator's namespace): Services, ClusterRoles bound to nothing in
	// the configuration (for users and scrapers to bind), and the like.
	Extra []*unstructured.Unstructured
}

// extraKinds are the kinds a registry+v1 bundle may carry besides the CSV
// and CRDs that the configuration may contain, and whether they are
// namespaced.
var extraKinds = map[string]bool{
	"Service":               true,
	"ConfigMap":             true,
	"ServiceMonitor":        true,
	"PrometheusRule":        true,
	"PodDisruptionBudget":   true,
	"ClusterRole":           false,
	"PriorityClass":         false,
	"VerticalPodAutoscaler": true,
}

// classify sorts the rendered objects of config/default into the parts of
// a bundle. It refuses what OLM cannot install as the configuration means
// it: RBAC in a namespace other than the operator's (CSV permissions have
// no namespace: OLM creates them where the operator runs), bindings for
// subjects other than the operator's ServiceAccount, and kinds a bundle
// may not carry.
func classify(objs []*unstructured.Unstructured) (*installation, error) {
	in := &installation{}
	var deployments []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			deployments = append(deployments, o)
		}
	}
	if len(deployments) != 1 {
		return nil, fmt.Errorf("the configuration must hold exactly one Deployment (the operator), found %d", len(deployments))
	}
	in.Deployment = &appsv1.Deployment{}
	if err := fromUnstructured(deployments[0], in.Deployment); err != nil {
		return nil, err
	}
	in.Namespace = in.Deployment.Namespace
	in.ServiceAccount = in.Deployment.Spec.Template.Spec.ServiceAccountName
	if in.Namespace == "" || in.ServiceAccount == "" {
		return nil, fmt.Errorf("the Deployment %s needs a namespace and a serviceAccountName", in.Deployment.Name)
	}

	roles := map[string]*rbacv1.Role{}
	clusterRoles := map[string]*rbacv1.ClusterRole{}
	var roleBindings []*rbacv1.RoleBinding
	var clusterRoleBindings []*rbacv1.ClusterRoleBinding
	for _, o := range objs {
		id := describe(o)
		switch o.GetKind() {
		case "Deployment":
		case "Namespace":
			if o.GetName() != in.Namespace {
				return nil, fmt.Errorf("%s: a bundle cannot create namespaces; OLM installs into the operator's namespace only", id)
			}
		case "ServiceAccount":
			if o.GetName() != in.ServiceAccount || o.GetNamespace() != in.Namespace {
				return nil, fmt.Errorf("%s: only the operator's ServiceAccount %s/%s is supported (OLM creates it)", id, in.Namespace, in.ServiceAccount)
			}
		case "CustomResourceDefinition":
			crd := &apiextv1.CustomResourceDefinition{}
			if err := fromUnstructured(o, crd); err != nil {
				return nil, err
			}
			in.CRDs = append(in.CRDs, crd)
			in.CRDObjects = append(in.CRDObjects, o)
		case "Role":
			if o.GetNamespace() != in.Namespace {
				return nil, foreignNamespace(id, in.Namespace)
			}
			r := &rbacv1.Role{}
			if err := fromUnstructured(o, r); err != nil {
				return nil, err
			}
			roles[r.Name] = r
		case "RoleBinding":
			if o.GetNamespace() != in.Namespace {
				return nil, foreignNamespace(id, in.Namespace)
			}
			b := &rbacv1.RoleBinding{}
			if err := fromUnstructured(o, b); err != nil {
				return nil, err
			}
			roleBindings = append(roleBindings, b)
		case "ClusterRole":
			r := &rbacv1.ClusterRole{}
			if err := fromUnstructured(o, r); err != nil {
				return nil, err
			}
			clusterRoles[r.Name] = r
		case "ClusterRoleBinding":
			b := &rbacv1.ClusterRoleBinding{}
			if err := fromUnstructured(o, b); err != nil {
				return nil, err
			}
			clusterRoleBindings = append(clusterRoleBindings, b)
		default:
			namespaced, ok := extraKinds[o.GetKind()]
			if !ok {
				return nil, fmt.Errorf("%s: a registry+v1 bundle cannot carry this kind", id)
			}
			if namespaced && o.GetNamespace() != in.Namespace {
				return nil, foreignNamespace(id, in.Namespace)
			}
			in.Extra = append(in.Extra, o)
		}
	}

	usedRoles := map[string]bool{}
	usedClusterRoles := map[string]bool{}
	for _, b := range roleBindings {
		if err := checkSubjects("RoleBinding "+in.Namespace+"/"+b.Name, b.Subjects, in); err != nil {
			return nil, err
		}
		var rules []rbacv1.PolicyRule
		switch b.RoleRef.Kind {
		case "Role":
			r, ok := roles[b.RoleRef.Name]
			if !ok {
				return nil, fmt.Errorf("RoleBinding %s/%s refers to Role %s, which the configuration does not hold", in.Namespace, b.Name, b.RoleRef.Name)
			}
			rules, usedRoles[r.Name] = r.Rules, true
		case "ClusterRole":
			r, ok := clusterRoles[b.RoleRef.Name]
			if !ok {
				return nil, fmt.Errorf("RoleBinding %s/%s refers to ClusterRole %s, which the configuration does not hold", in.Namespace, b.Name, b.RoleRef.Name)
			}
			// Granted in the operator's namespace only: a namespaced permission.
			rules = r.Rules
		default:
			return nil, fmt.Errorf("RoleBinding %s/%s: roleRef kind %q", in.Namespace, b.Name, b.RoleRef.Kind)
		}
		in.Permissions = append(in.Permissions, v1alpha1.StrategyDeploymentPermissions{ServiceAccountName: in.ServiceAccount, Rules: rules})
	}
	for _, b := range clusterRoleBindings {
		if err := checkSubjects("ClusterRoleBinding "+b.Name, b.Subjects, in); err != nil {
			return nil, err
		}
		r, ok := clusterRoles[b.RoleRef.Name]
		if b.RoleRef.Kind != "ClusterRole" || !ok {
			return nil, fmt.Errorf("ClusterRoleBinding %s refers to %s %s, which the configuration does not hold", b.Name, b.RoleRef.Kind, b.RoleRef.Name)
		}
		usedClusterRoles[r.Name] = true
		in.ClusterPermissions = append(in.ClusterPermissions, v1alpha1.StrategyDeploymentPermissions{ServiceAccountName: in.ServiceAccount, Rules: r.Rules})
	}
	for _, name := range slices.Sorted(maps.Keys(roles)) {
		if !usedRoles[name] {
			return nil, fmt.Errorf("the Role %s/%s is bound to nothing: a bundle can only grant a Role to the operator's ServiceAccount", in.Namespace, name)
		}
	}
	// ClusterRoles granted to nobody (a metrics reader, aggregated editor
	// and viewer roles) are shipped as they are, for admins to bind.
	for _, o := range objs {
		if o.GetKind() == "ClusterRole" && !usedClusterRoles[o.GetName()] {
			in.Extra = append(in.Extra, o)
		}
	}
	if len(in.CRDs) == 0 {
		return nil, fmt.Errorf("the configuration holds no CustomResourceDefinition")
	}
	sortPermissions(in.Permissions)
	sortPermissions(in.ClusterPermissions)
	return in, nil
}

func foreignNamespace(id, ns string) error {
	return fmt.Errorf("%s is outside the operator's namespace %s: OLM creates a CSV's permissions and objects only where the operator is installed "+
		"(CSV permissions have no namespace field), so the operator must not need RBAC or objects in another namespace", id, ns)
}

// checkSubjects accepts bindings whose only subject is the operator's
// ServiceAccount: OLM binds the CSV's permissions to it and nothing else.
func checkSubjects(id string, subjects []rbacv1.Subject, in *installation) error {
	for _, s := range subjects {
		if s.Kind != "ServiceAccount" || s.Name != in.ServiceAccount || (s.Namespace != "" && s.Namespace != in.Namespace) {
			return fmt.Errorf("%s binds %s %s/%s: a bundle can only grant permissions to the operator's ServiceAccount %s/%s",
				id, s.Kind, s.Namespace, s.Name, in.Namespace, in.ServiceAccount)
		}
	}
	if len(subjects) == 0 {
		return fmt.Errorf("%s has no subjects", id)
	}
	return nil
}

// sortPermissions orders entries by their rules' text so that the output
// does not depend on the order of files in the configuration.
func sortPermissions(ps []v1alpha1.StrategyDeploymentPermissions) {
	slices.SortStableFunc(ps, func(a, b v1alpha1.StrategyDeploymentPermissions) int {
		return strings.Compare(fmt.Sprint(a.Rules), fmt.Sprint(b.Rules))
	})
}

func describe(o *unstructured.Unstructured) string {
	if o.GetNamespace() == "" {
		return fmt.Sprintf("%s %s", o.GetKind(), o.GetName())
	}
	return fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
}

func fromUnstructured(o *unstructured.Unstructured, into any) error {
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
		return fmt.Errorf("%s: %w", describe(o), err)
	}
	return nil
}
