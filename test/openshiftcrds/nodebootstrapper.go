package openshiftcrds

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// What the machine-config-operator creates on every OpenShift cluster for
// its nodes' TLS bootstrap: the node-bootstrapper ServiceAccount in its
// namespace, bound to system:node-bootstrapper (create and read CSRs).
const (
	// MCONamespace is the machine-config-operator's namespace.
	MCONamespace = "openshift-machine-config-operator"
	// NodeBootstrapper is the ServiceAccount nodes bootstrap as.
	NodeBootstrapper = "node-bootstrapper"
	// NodeBootstrapperBinding is the ClusterRoleBinding of it to
	// system:node-bootstrapper.
	NodeBootstrapperBinding = "system-bootstrap-node-bootstrapper"
)

// InstallNodeBootstrapper creates the namespace, the ServiceAccount and
// the ClusterRoleBinding as the machine-config-operator does; what exists
// already is left as it is, so tests of one control plane may each call
// it.
func InstallNodeBootstrapper(ctx context.Context, cfg *rest.Config) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	create := func(what string, err error) error {
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %s: %w", what, err)
		}
		return nil
	}
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: MCONamespace}}, metav1.CreateOptions{})
	if err := create("namespace "+MCONamespace, err); err != nil {
		return err
	}
	_, err = cs.CoreV1().ServiceAccounts(MCONamespace).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: NodeBootstrapper, Namespace: MCONamespace}}, metav1.CreateOptions{})
	if err := create("ServiceAccount "+NodeBootstrapper, err); err != nil {
		return err
	}
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: NodeBootstrapperBinding},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:node-bootstrapper"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: NodeBootstrapper, Namespace: MCONamespace}},
	}, metav1.CreateOptions{})
	return create("ClusterRoleBinding "+NodeBootstrapperBinding, err)
}
