package localcluster

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/openwmco/wmco/pkg/cluster"
)

// ClusterInfoRBACName names kubeadm's Role and RoleBinding that let
// system:anonymous read kube-public/cluster-info.
const ClusterInfoRBACName = "kubeadm:bootstrap-signer-clusterinfo"

const clusterInfoName = cluster.ClusterInfoName

// publishClusterInfo does what `kubeadm init` does in its bootstrap-token
// phase: a kubeconfig without credentials in kube-public/cluster-info, and
// a Role and RoleBinding in kube-public that grant `get` on that one
// ConfigMap to the user system:anonymous only. Service accounts, and so the
// operator, get no access to it through this binding.
func publishClusterInfo(ctx context.Context, cs kubernetes.Interface, server string, ca []byte) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters[""] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return fmt.Errorf("encode cluster-info kubeconfig: %w", err)
	}
	ns := metav1.NamespacePublic
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: clusterInfoName, Namespace: ns},
		Data:       map[string]string{"kubeconfig": string(data)},
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create %s/%s: %w", ns, clusterInfoName, err)
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: ClusterInfoRBACName, Namespace: ns},
		Rules: []rbacv1.PolicyRule{{
			Verbs: []string{"get"}, APIGroups: []string{""},
			Resources: []string{"configmaps"}, ResourceNames: []string{clusterInfoName},
		}},
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create Role %s/%s: %w", ns, ClusterInfoRBACName, err)
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ClusterInfoRBACName, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: ClusterInfoRBACName},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "system:anonymous"}},
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create RoleBinding %s/%s: %w", ns, ClusterInfoRBACName, err)
	}
	return nil
}
