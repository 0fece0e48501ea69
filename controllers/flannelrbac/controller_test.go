package flannelrbac_test

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/flannelrbac"
	"github.com/openwmco/wmco/test/ctrltest"
)

// The tests share one local control plane: see ctrltest.
func TestMain(m *testing.M) { os.Exit(ctrltest.Run(m)) }

func exists(obj client.Object) func() bool {
	return func() bool {
		err := ctrltest.Client.Get(context.Background(), client.ObjectKey{Name: flannelrbac.Name}, obj)
		return !apierrors.IsNotFound(err)
	}
}

// The operator, with exactly its generated RBAC, binds wmco:flannel to the
// user of its instance's Node while the network type is Flannel: that
// node may then list Nodes, a Node that only carries the instance label
// may not; the role and binding go when the network type changes and
// when the last Node leaves.
func TestFlannelNodesMayListNodes(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ctrltest.SetNodeConfig(t, func(spec *wmcov1.WindowsNodeConfigSpec) {
		spec.Network = wmcov1.NetworkSpec{Type: wmcov1.NetworkFlannel}
	})
	var reads ctrltest.CountingReader
	ctrltest.StartManagerWithGeneratedRBAC(t, "wmco-flannelrbac-test", func(mgr ctrl.Manager) error {
		reads.Reader = mgr.GetAPIReader()
		return (&flannelrbac.Reconciler{Client: mgr.GetClient(), APIReader: &reads}).SetupWithManager(mgr)
	})
	const name, rogue = "win-flannel-rbac", "win-flannel-rogue"
	g.Expect(ctrltest.NodeMayListNodes(g, name)).To(BeFalse(), "the Node authorizer lets a node read only its own Node")

	wi := &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: wmcov1.WindowsInstanceSpec{Address: "192.0.2.31", Username: "Administrator"}}
	g.Expect(ctrltest.Client.Create(ctx, wi)).To(Succeed())
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), wi) })
	wi.Status.NodeName = name
	g.Expect(ctrltest.Client.Status().Update(ctx, wi)).To(Succeed())
	for _, n := range []string{name, rogue} {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{wmcov1.LabelInstance: name}}}
		g.Expect(ctrltest.Client.Create(ctx, node)).To(Succeed())
		t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), node) })
	}

	g.Eventually(func(g Gomega) bool { return ctrltest.NodeMayListNodes(g, name) }).WithTimeout(30 * time.Second).Should(BeTrue())
	g.Expect(ctrltest.NodeMayListNodes(g, rogue)).To(BeFalse(), "a label alone binds nothing")
	role := &rbacv1.ClusterRole{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: flannelrbac.Name}, role)).To(Succeed())
	g.Expect(role.Rules).To(Equal(flannelrbac.Rules()))
	binding := &rbacv1.ClusterRoleBinding{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: flannelrbac.Name}, binding)).To(Succeed())
	g.Expect(binding.Subjects).To(Equal(flannelrbac.Subjects([]string{name})))

	// Another network type: nothing is granted.
	ctrltest.SetNodeConfig(t, func(spec *wmcov1.WindowsNodeConfigSpec) {
		spec.Network = wmcov1.NetworkSpec{Type: wmcov1.NetworkNone}
	})
	g.Eventually(exists(&rbacv1.ClusterRoleBinding{})).WithTimeout(30 * time.Second).Should(BeFalse())
	g.Eventually(exists(&rbacv1.ClusterRole{})).WithTimeout(30 * time.Second).Should(BeFalse())
	g.Expect(ctrltest.NodeMayListNodes(g, name)).To(BeFalse())
	// Once removed, Node events do not read them again.
	before := reads.Gets.Load()
	other := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "win-flannel-other", Labels: map[string]string{wmcov1.LabelInstance: "none"}}}
	g.Expect(ctrltest.Client.Create(ctx, other)).To(Succeed())
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), other) })
	g.Consistently(reads.Gets.Load, 2*time.Second).Should(Equal(before))

	// Flannel again, then the Node leaves.
	ctrltest.SetNodeConfig(t, func(spec *wmcov1.WindowsNodeConfigSpec) {
		spec.Network = wmcov1.NetworkSpec{Type: wmcov1.NetworkFlannel}
	})
	g.Eventually(func(g Gomega) bool { return ctrltest.NodeMayListNodes(g, name) }).WithTimeout(30 * time.Second).Should(BeTrue())
	g.Expect(ctrltest.Client.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	g.Eventually(exists(&rbacv1.ClusterRoleBinding{})).WithTimeout(30 * time.Second).Should(BeFalse())
	g.Eventually(exists(&rbacv1.ClusterRole{})).WithTimeout(30 * time.Second).Should(BeFalse())
	g.Expect(ctrltest.NodeMayListNodes(g, name)).To(BeFalse())
}
