package instance_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// A pod's process that survived the drain still holds a payload file:
// deleting the instance waits, the status names the file and its holder,
// and the host is cleaned once the process exits.
func TestCleanupWaitsForAProcessHoldingAPayloadFile(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	h := ctrltest.StartHosts(t, 1, simagent.Options{})[0]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	ctrltest.WaitReady(t, h.Name, 90*time.Second)

	held := ctrltest.Payload.HostPath(payload.CNIWinOverlayPath)
	p, err := h.Host.StartProcess("pause.exe", held)
	g.Expect(err).NotTo(HaveOccurred())
	defer p.Exit()
	g.Expect(ctrltest.Client.Delete(ctx, &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: h.Name}})).To(Succeed())

	g.Eventually(func(g Gomega) {
		wi := &wmcov1.WindowsInstance{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, wi)).To(Succeed())
		g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseDeprovisioning))
		c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionReconciling)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(instance.ReasonCleanupFailed))
		g.Expect(c.Message).To(ContainSubstring("pause.exe"))
		g.Expect(c.Message).To(ContainSubstring("win-overlay.exe"))
		g.Expect(wi.Status.Message).To(Equal(c.Message))
		t.Logf("status while the file is held: %s", c.Message)
	}).WithTimeout(2 * time.Minute).WithPolling(250 * time.Millisecond).Should(Succeed())

	p.Exit()
	ctrltest.DeleteAndWait(t, h.Name, 2*time.Minute)
	ctrltest.ExpectHostClean(g, h)
}
