package instance_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/bootstrap"
	"github.com/openwmco/wmco/test/ctrltest"
)

// A paused instance that is deleted leaves its host and Node alone, but
// not its bootstrap identity: the ServiceAccount, the Secret keeping its
// token and its subject in the binding go before the finalizer does, so
// a later instance of the same name finds nothing bound.
func TestDeletingAPausedInstanceRevokesItsBootstrapIdentity(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{})

	// Paused part-way through a join: the finalizer stored, a token
	// issued (as the plan phase does).
	wi := &wmcov1.WindowsInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "paused-delete-revokes", Finalizers: []string{wmcov1.Finalizer}},
		Spec:       wmcov1.WindowsInstanceSpec{Address: "192.0.2.77", Username: "Administrator", Paused: true},
	}
	g.Expect(ctrltest.Client.Create(ctx, wi)).To(Succeed())
	t.Cleanup(func() {
		_ = ctrltest.Client.Delete(context.Background(), &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: wi.Name}})
	})
	tokens := &bootstrap.Tokens{Client: ctrltest.Client, Namespace: ctrltest.Namespace}
	_, err := tokens.Issue(ctx, wi)
	g.Expect(err).NotTo(HaveOccurred())
	users, err := tokens.Usernames(ctx, wi)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(users).To(HaveLen(1))
	saName := users[0][len(bootstrap.ServiceAccountUserPrefix+ctrltest.Namespace+":"):]
	bound := func(g Gomega) []string {
		crb := &rbacv1.ClusterRoleBinding{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: bootstrap.BindingName}, crb)).To(Succeed())
		var names []string
		for _, s := range crb.Subjects {
			names = append(names, s.Name)
		}
		return names
	}
	g.Expect(bound(g)).To(ContainElement(saName))

	g.Expect(ctrltest.Client.Delete(ctx, wi)).To(Succeed())
	g.Eventually(func(g Gomega) {
		err := ctrltest.Client.Get(ctx, client.ObjectKey{Name: wi.Name}, &wmcov1.WindowsInstance{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the instance is gone: %v", err)
		for _, obj := range []client.Object{&corev1.ServiceAccount{}, &corev1.Secret{}} {
			err := ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: saName}, obj)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%T %s: %v", obj, saName, err)
		}
		// Only a revocation unbinds it; the garbage collector, which
		// deletes what the instance owned, leaves the binding alone.
		g.Expect(bound(g)).NotTo(ContainElement(saName))
		g.Expect(instanceEvents(g, wi.Name)).To(ContainElement(HavePrefix("DeletedWhilePaused: ")))
	}).WithTimeout(30 * time.Second).Should(Succeed())
}
