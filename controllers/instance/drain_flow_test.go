package instance_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// Deleting an instance whose Node runs a pod that a PodDisruptionBudget
// protects leaves the pod in place and says so in Draining, naming the pod
// and the budget, without holding a worker: with one worker, another host
// joins meanwhile. Once the budget goes, the drain finishes, the Node is
// deleted and the host cleaned.
func TestDrainBlockedByPDBHoldsNoWorker(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 2, simagent.Options{})
	a, b := hosts[0], hosts[1]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 1})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(a))).To(Succeed())
	node := ctrltest.WaitReady(t, a.Name, 90*time.Second)
	pod, pdb := protectedPod(t, "drain-"+a.Name, node.Name)

	start := time.Now()
	g.Expect(ctrltest.Client.Delete(ctx, &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: a.Name}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := drainingCondition(g, a.Name)
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Reason).To(Equal(instance.ReasonDrainBlockedByPDB))
		g.Expect(c.Message).To(ContainSubstring("1 pod left: " + pod))
		g.Expect(c.Message).To(ContainSubstring(pod + " by PodDisruptionBudget " + pdb))
		g.Expect(c.Message).To(ContainSubstring("needs 1 healthy pods and has 1 currently"))
	}).WithTimeout(30 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	t.Logf("drain of %s blocked by %s, reported after %s", node.Name, pdb, time.Since(start).Round(time.Millisecond))
	cordoned := &corev1.Node{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: node.Name}, cordoned)).To(Succeed())
	g.Expect(cordoned.Spec.Unschedulable).To(BeTrue(), "the Node is cordoned")

	// One worker: had the blocked drain held it, B could not join.
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(b))).To(Succeed())
	ctrltest.WaitReady(t, b.Name, 90*time.Second)
	t.Logf("%s joined while %s's drain was blocked, %s after the deletion", b.Name, a.Name, time.Since(start).Round(time.Millisecond))
	c := drainingCondition(g, a.Name)
	g.Expect(c.Reason).To(Equal(instance.ReasonDrainBlockedByPDB), "A is still blocked: %s", c.Message)
	g.Expect(getPod(g, pod).DeletionTimestamp).To(BeNil(), "the protected pod is not evicted")

	// Relaxing the budget lets the drain finish.
	g.Expect(ctrltest.Client.Delete(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "drain-" + a.Name, Name: "web"}})).To(Succeed())
	relaxed := time.Now()
	ctrltest.DeleteAndWait(t, a.Name, 60*time.Second)
	t.Logf("%s drained and deconfigured %s after the budget was deleted", a.Name, time.Since(relaxed).Round(time.Millisecond))
	g.Expect(apierrors.IsNotFound(ctrltest.Client.Get(ctx, client.ObjectKey{Name: node.Name}, &corev1.Node{}))).To(BeTrue(), "the Node is deleted")
	g.Expect(apierrors.IsNotFound(ctrltest.Client.Get(ctx, podObjectKey(pod), &corev1.Pod{}))).To(BeTrue(), "the pod was evicted")
	ctrltest.ExpectHostClean(g, a)
	g.Eventually(func(g Gomega) {
		g.Expect(eventReasons(g, a.Name)).To(ContainElement("NodeDrained"))
	}).WithTimeout(10 * time.Second).Should(Succeed())

	ctrltest.DeleteAndWait(t, b.Name, 60*time.Second)
	ctrltest.ExpectHostClean(g, b)
}

// A drain past its deadline reports DrainTimedOut, with the pod and the
// budget, in the condition and an Event; it forces nothing and holds no
// worker, and finishes once the budget allows it.
func TestDrainPastItsDeadlineHoldsNoWorker(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{})
	a := hosts[0]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 1, DrainTimeout: 2 * time.Second})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(a))).To(Succeed())
	node := ctrltest.WaitReady(t, a.Name, 90*time.Second)
	pod, pdb := protectedPod(t, "drain-"+a.Name, node.Name)

	g.Expect(ctrltest.Client.Delete(ctx, &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: a.Name}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := drainingCondition(g, a.Name)
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Reason).To(Equal(instance.ReasonDrainTimedOut))
		g.Expect(c.Message).To(HavePrefix("Node " + node.Name + " not drained within 2s"))
		g.Expect(c.Message).To(ContainSubstring(pod + " by PodDisruptionBudget " + pdb))
	}).WithTimeout(30 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(eventReasons(g, a.Name)).To(ContainElement(instance.ReasonDrainTimedOut))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Expect(getPod(g, pod).DeletionTimestamp).To(BeNil(), "no pod is forced past its budget")

	// The only worker is free between the drain's steps: a blocking
	// drain would keep it busy throughout.
	g.Eventually(activeWorkers).WithTimeout(10*time.Second).WithPolling(50*time.Millisecond).Should(BeZero(),
		"no worker is held by the timed-out drain")
	g.Expect(drainingCondition(g, a.Name).Reason).To(Equal(instance.ReasonDrainTimedOut))

	g.Expect(ctrltest.Client.Delete(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "drain-" + a.Name, Name: "web"}})).To(Succeed())
	ctrltest.DeleteAndWait(t, a.Name, 60*time.Second)
	ctrltest.ExpectHostClean(g, a)
}

// protectedPod creates, in a new namespace, a pod bound to node that is
// Running and Ready (runningPod, with no grace period: without a kubelet
// to confirm a graceful deletion, an evicted pod goes at once only so)
// and a PodDisruptionBudget (minAvailable 1) that the disruption
// controller has computed to allow no disruption. It returns the pod and
// the budget as namespace/name.
func protectedPod(t *testing.T, ns, node string) (pod, pdb string) {
	t.Helper()
	g := NewWithT(t)
	ctx := t.Context()
	runningPod(t, ns, node, 0)
	one := intstr.FromInt32(1)
	budget := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		},
	}
	g.Expect(ctrltest.Client.Create(ctx, budget)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := &policyv1.PodDisruptionBudget{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKeyFromObject(budget), got)).To(Succeed())
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(got.Status.CurrentHealthy).To(Equal(int32(1)))
		g.Expect(got.Status.DisruptionsAllowed).To(BeZero())
	}).WithTimeout(30*time.Second).Should(Succeed(), "the disruption controller computes the budget")
	return ns + "/web", ns + "/web"
}

// runningPod creates, in a new namespace ns, the pod web (label app=web)
// bound to node, with the given termination grace period, Running and
// Ready: there is no kubelet to run it, so the status is written as
// admin. It returns it as namespace/name.
func runningPod(t *testing.T, ns, node string, grace int64) string {
	t.Helper()
	g := NewWithT(t)
	ctx := t.Context()
	g.Expect(ctrltest.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	t.Cleanup(func() {
		_ = ctrltest.Client.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	})
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			Containers:                    []corev1.Container{{Name: "web", Image: "mcr.microsoft.com/oss/kubernetes/pause:3.9"}},
			Tolerations:                   []corev1.Toleration{{Key: "os", Value: "Windows", Effect: corev1.TaintEffectNoSchedule}},
			TerminationGracePeriodSeconds: ptr.To(grace),
		},
	}
	// The namespace's default ServiceAccount, which admission requires,
	// comes moments after the namespace.
	g.Eventually(func() error { return ctrltest.Client.Create(ctx, p) }).WithTimeout(30 * time.Second).Should(Succeed())
	now := metav1.Now()
	p.Status = corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
	}
	g.Expect(ctrltest.Client.Status().Update(ctx, p)).To(Succeed())
	return ns + "/" + p.Name
}

func podObjectKey(nsName string) client.ObjectKey {
	ns, name, _ := strings.Cut(nsName, "/")
	return client.ObjectKey{Namespace: ns, Name: name}
}

func getPod(g Gomega, nsName string) *corev1.Pod {
	p := &corev1.Pod{}
	g.Expect(ctrltest.Client.Get(context.Background(), podObjectKey(nsName), p)).To(Succeed())
	return p
}

func drainingCondition(g Gomega, name string) metav1.Condition {
	wi := &wmcov1.WindowsInstance{}
	g.Expect(ctrltest.Client.Get(context.Background(), client.ObjectKey{Name: name}, wi)).To(Succeed())
	c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionDraining)
	g.Expect(c).NotTo(BeNil(), "no Draining condition yet")
	return *c
}

// eventReasons are the reasons of the Events regarding the instance.
func eventReasons(g Gomega, name string) []string {
	var list eventsv1.EventList
	g.Expect(ctrltest.Client.List(context.Background(), &list, client.InNamespace(metav1.NamespaceDefault))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "WindowsInstance" && e.Regarding.Name == name {
			out = append(out, e.Reason)
		}
	}
	return out
}

// activeWorkers is how many workers of the WindowsInstance controller are
// reconciling right now.
func activeWorkers() (float64, error) {
	values, err := ctrltest.Metrics()
	if err != nil {
		return 0, err
	}
	v, ok := values["controller_runtime_active_workers,controller=windowsinstance"]
	if !ok {
		return 0, errors.New("no controller_runtime_active_workers gauge for the windowsinstance controller")
	}
	return v, nil
}
