package csrapproval_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/bootstrap"
	"github.com/openwmco/wmco/test/ctrltest"
)

// whoAmI is the user a bearer token authenticates as, or the error of the
// API server (Unauthorized for a dead token).
func whoAmI(ctx context.Context, token string) (string, error) {
	cs, err := kubernetes.NewForConfig(&rest.Config{
		Host:            ctrltest.Cluster.Host,
		TLSClientConfig: rest.TLSClientConfig{CAData: ctrltest.Cluster.CACert},
		BearerToken:     token,
	})
	if err != nil {
		return "", err
	}
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return r.Status.UserInfo.Username, nil
}

// bindingSubjects are the subjects of the bootstrap ClusterRoleBinding.
func bindingSubjects(ctx context.Context, g Gomega) []rbacv1.Subject {
	crb := &rbacv1.ClusterRoleBinding{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: bootstrap.BindingName}, crb)).To(Succeed())
	g.Expect(crb.RoleRef.Name).To(Equal(bootstrap.NodeBootstrapperRole))
	return crb.Subjects
}

// A host's bootstrap credential lives in the operator's namespace only: a
// ServiceAccount of its own, bound to system:node-bootstrapper by the one
// ClusterRoleBinding, and a short-lived TokenRequest token kept in a Secret
// of the same name. Issue returns the same token until it is half spent;
// Revoke kills the token, removes the Secret and the binding's subject;
// EnsureRBAC puts back a binding someone widened.
func TestBootstrapIdentityLifecycle(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	instance := "boot-" + csrtSuffix(t)
	tokens := &bootstrap.Tokens{Client: ctrltest.Client, Namespace: ctrltest.Namespace}
	g.Expect(tokens.EnsureRBAC(ctx)).To(Succeed())
	t.Cleanup(func() { _ = tokens.Revoke(context.Background(), instance) })

	token, err := tokens.Issue(ctx, instance)
	g.Expect(err).NotTo(HaveOccurred())
	users, err := tokens.Usernames(ctx, instance)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(users).To(HaveLen(1))
	g.Expect(users[0]).To(HavePrefix(bootstrap.ServiceAccountUserPrefix + ctrltest.Namespace + ":" + bootstrap.NamePrefix))
	saName := users[0][len(bootstrap.ServiceAccountUserPrefix+ctrltest.Namespace+":"):]

	// The token authenticates as the ServiceAccount, which may create
	// CSRs through the binding and nothing more.
	g.Eventually(func() (string, error) { return whoAmI(ctx, token) }).WithTimeout(10 * time.Second).Should(Equal(users[0]))
	g.Eventually(func(g Gomega) {
		g.Expect(bindingSubjects(ctx, g)).To(ContainElement(rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: saName, Namespace: ctrltest.Namespace}))
	}).Should(Succeed())
	sa := &corev1.ServiceAccount{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: saName}, sa)).To(Succeed())
	g.Expect(sa.Labels).To(HaveKeyWithValue(wmcov1.LabelInstance, instance))
	sec := &corev1.Secret{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: saName}, sec)).To(Succeed())
	g.Expect(sec.Type).To(Equal(bootstrap.SecretType))
	g.Expect(sec.OwnerReferences).To(ContainElement(HaveField("UID", sa.UID)))

	// Issued again while fresh: the same token, so a host's plan does not
	// change from one reconcile to the next.
	again, err := tokens.Issue(ctx, instance)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(Equal(token))
	// Half spent: a new token of the same identity.
	late := &bootstrap.Tokens{Client: ctrltest.Client, Namespace: ctrltest.Namespace, Now: func() time.Time { return time.Now().Add(40 * time.Minute) }}
	renewed, err := late.Issue(ctx, instance)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(renewed).NotTo(Equal(token))
	g.Expect(whoAmI(ctx, renewed)).To(Equal(users[0]))

	// Someone widens the binding: EnsureRBAC (at every start) narrows it
	// to the bootstrap ServiceAccounts again.
	crb := &rbacv1.ClusterRoleBinding{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: bootstrap.BindingName}, crb)).To(Succeed())
	crb.Subjects = append(crb.Subjects, rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:authenticated"})
	g.Expect(ctrltest.Client.Update(ctx, crb)).To(Succeed())
	g.Expect(tokens.EnsureRBAC(ctx)).To(Succeed())
	g.Expect(bindingSubjects(ctx, g)).NotTo(ContainElement(HaveField("Kind", rbacv1.GroupKind)))

	// Revoked: both tokens stop authenticating (after the API server's
	// token cache, 10 s by default), the Secret and the subject are gone.
	g.Expect(tokens.Revoke(ctx, instance)).To(Succeed())
	for _, tok := range []string{token, renewed} {
		g.Eventually(func() error { _, err := whoAmI(ctx, tok); return err }).
			WithTimeout(30 * time.Second).WithPolling(time.Second).Should(Satisfy(apierrors.IsUnauthorized))
	}
	err = ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: saName}, &corev1.Secret{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "token Secret: %v", err)
	g.Expect(bindingSubjects(ctx, g)).NotTo(ContainElement(HaveField("Name", saName)))
	users, err = tokens.Usernames(ctx, instance)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(users).To(BeEmpty())
}
