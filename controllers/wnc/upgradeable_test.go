package wnc_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/controllers/wnc"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/localcluster"
)

// While any host is mid-upgrade the operator is not upgradeable: the
// WindowsNodeConfig says Upgradeable=False naming the hosts, and so does
// OLM's OperatorCondition of the operator, which OLM reads before it
// replaces an operator.
func TestUpgradeableWhileHostsUpgrade(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ctrltest.HostFixture(t)
	g.Expect(localcluster.InstallCRDs(ctx, ctrltest.Cluster.Config, "controllers/wnc/testdata/olm")).To(Succeed())
	oc := &unstructured.Unstructured{}
	oc.SetGroupVersionKind(schema.GroupVersionKind{Group: "operators.coreos.com", Version: "v2", Kind: "OperatorCondition"})
	oc.SetNamespace(ctrltest.Namespace)
	oc.SetName("openwmco.v0.1.0")
	g.Eventually(func() error { return ctrltest.Client.Create(ctx, oc) }).WithTimeout(30 * time.Second).Should(Succeed())
	ctrltest.SetNodeConfig(t, func(*wmcov1.WindowsNodeConfigSpec) {})
	ctrltest.StartManager(t, func(mgr ctrl.Manager) error {
		return (&wnc.Reconciler{
			Client: mgr.GetClient(), Payloads: payload.NewCatalog(payload.Entry{Dir: ctrltest.PayloadDir, Manifest: ctrltest.Payload}),
			ServerVersion: core.StaticVersion(localcluster.DefaultKubernetesVersion),
			Namespace:     ctrltest.Namespace, OperatorConditionName: oc.GetName(),
		}).SetupWithManager(mgr)
	})

	wi := &wmcov1.WindowsInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "upgradeable-host"},
		Spec:       wmcov1.WindowsInstanceSpec{Address: "192.0.2.77", Username: "Administrator"},
	}
	g.Expect(ctrltest.Client.Create(ctx, wi)).To(Succeed())
	t.Cleanup(func() { _ = ctrltest.Client.Delete(ctx, wi) })
	expect := func(status metav1.ConditionStatus, reason, message string) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			cfg := &wmcov1.WindowsNodeConfig{}
			g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: wmcov1.WindowsNodeConfigName}, cfg)).To(Succeed())
			c := meta.FindStatusCondition(cfg.Status.Conditions, wnc.ConditionUpgradeable)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(status))
			g.Expect(c.Reason).To(Equal(reason))
			g.Expect(c.Message).To(ContainSubstring(message))

			got := oc.DeepCopy()
			g.Expect(ctrltest.Client.Get(ctx, client.ObjectKeyFromObject(oc), got)).To(Succeed())
			conds, _, _ := unstructured.NestedSlice(got.Object, "spec", "conditions")
			g.Expect(conds).To(HaveLen(1))
			cond := conds[0].(map[string]any)
			g.Expect(cond).To(HaveKeyWithValue("type", "Upgradeable"))
			g.Expect(cond).To(HaveKeyWithValue("status", string(status)))
			g.Expect(cond).To(HaveKeyWithValue("reason", reason))
		}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	}
	expect(metav1.ConditionTrue, wnc.ReasonNoUpgradeInProgress, "no host")

	base := wi.DeepCopy()
	wi.Status.Upgrade = &wmcov1.UpgradeStatus{From: "v1.36.9-a", To: "v1.37.2-b", Progress: "v1.36.9-a → v1.37.2-b", StartedAt: metav1.Now()}
	g.Expect(ctrltest.Client.Status().Patch(ctx, wi, client.MergeFrom(base))).To(Succeed())
	expect(metav1.ConditionFalse, wnc.ReasonHostsUpgrading, "upgradeable-host (v1.36.9-a → v1.37.2-b)")

	base = wi.DeepCopy()
	wi.Status.Upgrade = nil
	g.Expect(ctrltest.Client.Status().Patch(ctx, wi, client.MergeFrom(base))).To(Succeed())
	expect(metav1.ConditionTrue, wnc.ReasonNoUpgradeInProgress, "no host")
}
