package instance_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// A rename whose drain a PodDisruptionBudget holds up, given up by
// setting spec.nodeName back, ends its drain: the Node the operator
// cordoned is uncordoned and Draining goes, so the next drain counts its
// deadline from its own start. A Node an admin cordoned before stays
// cordoned when the rename is given up.
func TestRenameGivenUpEndsItsDrain(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	h := ctrltest.StartHosts(t, 1, simagent.Options{})[0]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	node := ctrltest.WaitReady(t, h.Name, 90*time.Second)
	protectedPod(t, "rename-"+h.Name, node.Name)

	rename := func(to string) {
		t.Helper()
		g.Expect(ctrltest.UpdateInstance(ctx, h.Name, func(wi *wmcov1.WindowsInstance) { wi.Spec.NodeName = to })).To(Succeed())
	}
	// The rename's drain is under way, held up by the budget.
	blocked := func() metav1.Condition {
		t.Helper()
		var c metav1.Condition
		g.Eventually(func(g Gomega) {
			c = drainingCondition(g, h.Name)
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(instance.ReasonDrainBlockedByPDB))
		}).WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
		return c
	}
	// The rename is given up: the drain ends, the instance is Ready
	// under its old name.
	givenUp := func() *corev1.Node {
		t.Helper()
		n := &corev1.Node{}
		g.Eventually(func(g Gomega) {
			wi := getInstance(g, h.Name)
			g.Expect(meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionDraining)).To(BeNil(), "no drain is under way")
			g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseReady), "%s: %s", wi.Status.Phase, wi.Status.Message)
			g.Expect(wi.Status.NodeName).To(Equal(node.Name))
			g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: node.Name}, n)).To(Succeed())
			g.Expect(n.Annotations).NotTo(HaveKey(wmcov1.AnnotationCordoned))
		}).WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
		return n
	}

	rename("renamed-" + h.Name)
	blocked()
	cordoned := &corev1.Node{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: node.Name}, cordoned)).To(Succeed())
	g.Expect(cordoned.Spec.Unschedulable).To(BeTrue(), "cordoned for the rename")
	g.Expect(cordoned.Annotations).To(HaveKey(wmcov1.AnnotationCordoned), "by the operator")
	rename("")
	g.Expect(givenUp().Spec.Unschedulable).To(BeFalse(), "the operator's cordon is undone")
	abandoned := time.Now()
	g.Eventually(func(g Gomega) {
		g.Expect(eventReasons(g, h.Name)).To(ContainElement(instance.ReasonDrainAbandoned))
	}).WithTimeout(10 * time.Second).Should(Succeed())

	// An admin cordons the Node; a rename drains it again, with a deadline
	// of its own, and is given up again: the admin's cordon stays.
	g.Eventually(func() error {
		n := &corev1.Node{}
		if err := ctrltest.Client.Get(ctx, client.ObjectKey{Name: node.Name}, n); err != nil {
			return err
		}
		n.Spec.Unschedulable = true
		return ctrltest.Client.Update(ctx, n)
	}).WithTimeout(10 * time.Second).Should(Succeed())
	rename("renamed-" + h.Name)
	c := blocked()
	g.Expect(c.LastTransitionTime.Time).NotTo(BeTemporally("<", abandoned.Truncate(time.Second)), "the drain started after the first was given up")
	rename("")
	n := givenUp()
	g.Expect(n.Spec.Unschedulable).To(BeTrue(), "the admin's cordon stays")

	g.Expect(ctrltest.Client.Delete(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "rename-" + h.Name, Name: "web"}})).To(Succeed())
	ctrltest.DeleteAndWait(t, h.Name, 2*time.Minute)
	ctrltest.ExpectHostClean(g, h)
}
