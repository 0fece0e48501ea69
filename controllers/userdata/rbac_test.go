package userdata_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/openwmco/wmco/pkg/userdata"
	"github.com/openwmco/wmco/test/ctrltest"
)

// Whoever holds the operator's token can create a Secret named
// windows-user-data anywhere (create cannot be narrowed by name), for
// example a service account token Secret of a cluster-admin service
// account in kube-system, which kube-controller-manager fills with a
// token. The operator's grant on Secrets of that name is update only, so
// the token cannot be read through it: get, list, watch and patch (whose
// answer is the whole Secret) are forbidden, and an update answers with
// what was sent.
func TestOperatorCannotReadASecretNamedUserData(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	const ns = "kube-system"
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "userdata-escalation-target"}}
	g.Expect(ctrltest.Client.Create(ctx, sa)).To(Succeed())
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), sa) })
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "userdata-escalation-target"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa.Name}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
	}
	g.Expect(ctrltest.Client.Create(ctx, crb)).To(Succeed())
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), crb) })

	user := "userdata-attacker"
	ctrltest.GrantGeneratedRBAC(t, user, user, ctrltest.Namespace)
	cfg, err := ctrltest.Cluster.UserConfig(user)
	g.Expect(err).NotTo(HaveOccurred())
	operator, err := kubernetes.NewForConfig(cfg)
	g.Expect(err).NotTo(HaveOccurred())

	bait := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: userdata.SecretName,
			Annotations: map[string]string{corev1.ServiceAccountNameKey: sa.Name}},
		Type: corev1.SecretTypeServiceAccountToken,
	}
	created, err := operator.CoreV1().Secrets(ns).Create(ctx, bait, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred(), "create is granted cluster-wide")
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), created) })
	g.Expect(created.Data).NotTo(HaveKey(corev1.ServiceAccountTokenKey))
	g.Eventually(func(g Gomega) {
		s := &corev1.Secret{}
		g.Expect(ctrltest.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: userdata.SecretName}, s)).To(Succeed())
		g.Expect(s.Data).To(HaveKey(corev1.ServiceAccountTokenKey), "kube-controller-manager filled in the token")
	}).WithTimeout(30 * time.Second).Should(Succeed())

	secrets := operator.CoreV1().Secrets(ns)
	_, err = secrets.Get(ctx, userdata.SecretName, metav1.GetOptions{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "get: %v", err)
	byName := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", userdata.SecretName).String()}
	_, err = secrets.List(ctx, byName)
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "list by name: %v", err)
	w, err := secrets.Watch(ctx, byName)
	if err == nil {
		w.Stop()
	}
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "watch by name: %v", err)
	_, err = secrets.Patch(ctx, userdata.SecretName, types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "patch: %v", err)
	updated, err := secrets.Update(ctx, bait, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred(), "update is granted on the name")
	g.Expect(updated.Data).To(BeEmpty(), "an update answers with what was sent")
}
