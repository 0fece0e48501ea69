package instance_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// A host that dies with a pod on its Node: the drain evicts the pod, and
// once its grace period has passed on the unreachable Node (Ready
// Unknown, no kubelet to finish it) no longer waits for it. The host
// cannot be cleaned, so the instance stays, saying how to let it go;
// annotated wmco.io/abandon-host, it goes: its Node is deleted, a Warning
// Event says what stays on the host, and nothing on the host was touched.
func TestDeadHostIsGivenUpWhenAsked(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	h := ctrltest.StartHosts(t, 1, simagent.Options{})[0]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	node := ctrltest.WaitReady(t, h.Name, 90*time.Second)
	pod := runningPod(t, "abandon-"+h.Name, node.Name, 2)

	// The VM dies; the node lifecycle controller then marks its Node
	// Unknown once no heartbeat came within its grace period (done here
	// at once).
	g.Expect(h.Host.Close()).To(Succeed())
	g.Eventually(func() error {
		n := &corev1.Node{}
		if err := ctrltest.Client.Get(ctx, client.ObjectKey{Name: node.Name}, n); err != nil {
			return err
		}
		for i := range n.Status.Conditions {
			if n.Status.Conditions[i].Type == corev1.NodeReady {
				n.Status.Conditions[i].Status = corev1.ConditionUnknown
				n.Status.Conditions[i].Reason = "NodeStatusUnknown"
				n.Status.Conditions[i].Message = "Kubelet stopped posting node status."
			}
		}
		return ctrltest.Client.Status().Update(ctx, n)
	}).WithTimeout(30 * time.Second).Should(Succeed())

	g.Expect(ctrltest.Client.Delete(ctx, &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: h.Name}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := drainingCondition(g, h.Name)
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(instance.ReasonDrained))
		g.Expect(c.Message).To(ContainSubstring("1 pod left terminating past their grace period on the unreachable Node, which no kubelet will finish, and go with the Node: " + pod))
		wi := getInstance(g, h.Name)
		g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseDeprovisioning))
		g.Expect(wi.Status.Message).To(And(ContainSubstring("cannot clean the host"),
			ContainSubstring("annotate the instance "+wmcov1.AnnotationAbandonHost+"=<why>")))
		g.Expect(meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionReachable).Status).To(Equal(metav1.ConditionFalse))
	}).WithTimeout(60 * time.Second).Should(Succeed())
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: node.Name}, &corev1.Node{})).To(Succeed(), "the Node stays while the host is held")

	g.Expect(ctrltest.UpdateInstance(ctx, h.Name, func(wi *wmcov1.WindowsInstance) {
		wi.Annotations = map[string]string{wmcov1.AnnotationAbandonHost: "the VM was destroyed"}
	})).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, &wmcov1.WindowsInstance{}))
	}).WithTimeout(60*time.Second).Should(BeTrue(), "the instance goes")
	g.Expect(apierrors.IsNotFound(ctrltest.Client.Get(ctx, client.ObjectKey{Name: node.Name}, &corev1.Node{}))).To(BeTrue(), "its Node is deleted")
	g.Eventually(func(g Gomega) []string { return instanceEvents(g, h.Name) }).WithTimeout(10 * time.Second).Should(ContainElement(And(
		HavePrefix(instance.ReasonHostAbandoned+": Gave the host at "+h.Host.IP()+" up uncleaned ("+wmcov1.AnnotationAbandonHost+` "the VM was destroyed"), as it cannot be reached`),
		ContainSubstring("deleted Node "+node.Name+" and revoked its bootstrap credentials"),
		ContainSubstring("if its kubelet still runs it registers its Node again"))))
	_, err := h.Host.Disk().Stat(wicdapi.AgentPath)
	g.Expect(err).NotTo(HaveOccurred(), "nothing on the host was cleaned")
}
