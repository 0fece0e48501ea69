package localenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/openwmco/wmco/test/localcluster"
	"github.com/openwmco/wmco/test/proc"
)

// GeneratedRBAC returns what config/rbac/role.yaml grants the operator, as
// a deployment binds it to subjects: its ClusterRole and Roles (named
// name) with their bindings. Roles of the operator's namespace
// (Namespace) are moved to namespace.
func GeneratedRBAC(name, namespace string, subjects []rbacv1.Subject) ([]client.Object, error) {
	root, err := proc.RepoRoot()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(root, "config", "rbac", "role.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	docs, err := YAMLDocuments(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var objs []client.Object
	kinds := map[string]bool{}
	for _, doc := range docs {
		var role rbacv1.Role // a ClusterRole has the same fields
		if err := sigsyaml.UnmarshalStrict(doc, &role); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		kinds[role.Kind+"/"+role.Namespace] = true
		switch role.Kind {
		case "ClusterRole":
			objs = append(objs,
				&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: role.Rules},
				&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subjects,
					RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}})
		case "Role":
			ns := role.Namespace
			if ns == Namespace {
				ns = namespace
			}
			objs = append(objs,
				&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Rules: role.Rules},
				&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Subjects: subjects,
					RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}})
		}
	}
	if !kinds["ClusterRole/"] || !kinds["Role/"+Namespace] {
		return nil, fmt.Errorf("%s: want a ClusterRole and a Role in %s, got %v", path, Namespace, kinds)
	}
	return objs, nil
}

// ServiceAccountKubeconfig writes to path a kubeconfig holding a token of
// the ServiceAccount namespace/name (valid for an hour), as a pod running
// as it would get one.
func ServiceAccountKubeconfig(ctx context.Context, c *localcluster.Cluster, namespace, name, path string) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token of ServiceAccount %s/%s: %w", namespace, name, err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CACert}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["operator"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: name, Namespace: namespace}
	kc.CurrentContext = "operator"
	return clientcmd.WriteToFile(*kc, path)
}

// OperatorServiceAccount creates the operator's ServiceAccount (name, in
// namespace) with what config/rbac/role.yaml grants it, and writes to
// path a kubeconfig with its token: the operator then runs with the
// identity, permissions and API priority and fairness of its deployment.
func OperatorServiceAccount(ctx context.Context, c *localcluster.Cluster, cl client.Client, namespace, name, path string) error {
	if err := cl.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}); err != nil {
		return err
	}
	objs, err := GeneratedRBAC(name, namespace, []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: namespace}})
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := cl.Create(ctx, o); err != nil {
			return err
		}
	}
	return ServiceAccountKubeconfig(ctx, c, namespace, name, path)
}
