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
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/winsim"
)

// An upgrade whose payload the next operator no longer ships, before the
// host moved to it, is given up and says so: Upgrading=False with reason
// UpgradeAbandoned, an Event of that reason, the Node uncordoned, and no
// success (no UpgradeSucceeded, no duration recorded).
func TestUpgradeToAPayloadNoLongerShippedIsGivenUp(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	h, base, next := joinedBeforeKubeletUpgrade(t, false)
	node := &corev1.Node{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: getInstance(g, h.Name).Status.NodeName}, node)).To(Succeed())
	ns := "abandon-" + h.Name
	protectedPod(t, ns, node.Name)

	// The upgrade to next is held at its drain when its operator stops.
	_, stop := ctrltest.StartStoppableOperator(t, ctrltest.OperatorOptions{
		Payloads: payload.NewCatalog(base, next), ServerVersion: core.StaticVersion("v1.37.3"),
	})
	g.Eventually(func(g Gomega) {
		wi := getInstance(g, h.Name)
		g.Expect(wi.Status.Upgrade).NotTo(BeNil())
		g.Expect(wi.Status.Upgrade.Step).To(Equal(wmcov1.UpgradeStepDraining))
		g.Expect(drainingCondition(g, h.Name).Reason).To(Equal(instance.ReasonDrainBlockedByPDB))
	}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
	stop()
	before, err := ctrltest.Metrics()
	g.Expect(err).NotTo(HaveOccurred())

	// The next operator ships base only.
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{
		Payloads: payload.NewCatalog(base), ServerVersion: core.StaticVersion("v1.37.3"),
	})
	g.Eventually(func(g Gomega) {
		wi := getInstance(g, h.Name)
		g.Expect(wi.Status.Upgrade).To(BeNil())
		c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionUpgrading)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(instance.ReasonUpgradeAbandoned))
		g.Expect(c.Message).To(ContainSubstring("payload " + next.Manifest.Version + " is no longer shipped by the operator"))
		g.Expect(c.Message).To(ContainSubstring("the host stays on payload " + base.Manifest.Version))
		g.Expect(wi.Status.FailedUpgrade).To(BeNil())
		g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseReady), "%s: %s", wi.Status.Phase, wi.Status.Message)
		g.Expect(wi.Status.PayloadVersion).To(Equal(base.Manifest.Version))
	}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKeyFromObject(node), node)).To(Succeed())
	g.Expect(node.Spec.Unschedulable).To(BeFalse(), "the upgrade's cordon is undone")
	g.Eventually(func(g Gomega) {
		g.Expect(eventReasons(g, h.Name)).To(ContainElement(instance.ReasonUpgradeAbandoned))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Expect(eventReasons(g, h.Name)).NotTo(ContainElement("UpgradeSucceeded"))
	after, err := ctrltest.Metrics()
	g.Expect(err).NotTo(HaveOccurred())
	for _, result := range []string{"drained", "inplace", "rolledback"} {
		key := "wmco_upgrade_duration_seconds,result=" + result
		g.Expect(after[key]).To(Equal(before[key]), "no %s upgrade's duration is recorded", result)
	}

	g.Expect(ctrltest.Client.Delete(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}})).To(Succeed())
	deleteAll(t, []*ctrltest.SimHost{h})
}

// An upgrade whose new kubelet does not start, on a host that kept no
// previous plan to roll back to, ends failed and says it was not rolled
// back: no RolledBack Event, the host left on the new payload, and its
// Node, whose new services failed, left cordoned for an admin (without the
// operator's mark, so that nothing uncordons it by itself).
func TestUpgradeThatCannotBeRolledBackLeavesTheNodeCordoned(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	h, good, bad := joinedBeforeKubeletUpgrade(t, true)
	// The previous plan is gone when the rollback looks for it.
	defer h.Host.Observe(winsim.Observer{Request: func(q winsim.Request) func() {
		if q.Kind == "exec" && len(q.Args) > 1 && q.Args[1] == wicdapi.RollbackArg {
			_ = h.Host.Disk().Remove(wicdapi.AppliedPlanPreviousPath)
		}
		return nil
	}})()

	ctrltest.StartOperator(t, ctrltest.OperatorOptions{
		Payloads: payload.NewCatalog(good, bad), ServerVersion: core.StaticVersion("v1.37.3"),
	})
	var nodeName string
	g.Eventually(func(g Gomega) {
		wi := getInstance(g, h.Name)
		g.Expect(wi.Status.Upgrade).To(BeNil())
		c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionUpgrading)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(instance.ReasonUpgradeFailed), "%s: %s", wi.Status.Phase, wi.Status.Message)
		g.Expect(c.Message).To(ContainSubstring("could not be rolled back (the host kept no previous plan)"))
		g.Expect(c.Message).To(ContainSubstring("the host stays on payload " + bad.Manifest.Version))
		g.Expect(c.Message).To(ContainSubstring("Node " + wi.Status.NodeName + " stays cordoned"))
		g.Expect(wi.Status.FailedUpgrade).NotTo(BeNil())
		g.Expect(wi.Status.FailedUpgrade.Version).To(Equal(bad.Manifest.Version))
		nodeName = wi.Status.NodeName
	}).WithTimeout(2 * time.Minute).WithPolling(250 * time.Millisecond).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(eventReasons(g, h.Name)).To(ContainElement("NotRolledBack"))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Expect(eventReasons(g, h.Name)).NotTo(ContainElement("RolledBack"))
	// The host's apply keeps failing and being retried; the Node stays
	// cordoned throughout.
	g.Consistently(func(g Gomega) {
		node := &corev1.Node{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: nodeName}, node)).To(Succeed())
		g.Expect(node.Spec.Unschedulable).To(BeTrue())
		g.Expect(node.Annotations).NotTo(HaveKey(wmcov1.AnnotationCordoned))
	}).WithTimeout(3 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	deleteAll(t, []*ctrltest.SimHost{h})
}
