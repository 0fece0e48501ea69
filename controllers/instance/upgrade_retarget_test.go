package instance_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// An in-place upgrade (a new windows_exporter) that another payload, with
// a new kubelet, replaces before it is applied (the control plane was
// upgraded meanwhile) becomes a rolling upgrade: the Node is cordoned and
// drained, and the upgrade ends once the new kubelet reports its version.
func TestInPlaceUpgradeRetargetedToANewKubeletDrains(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ps := newPayloads(t)
	base := ps.write("v1.37.2", 0)
	exporter := ps.derive(base, "", 1<<20, payload.WindowsExporterPath)
	newer := ps.derive(exporter, "v1.37.3", 0, payload.KubeletPath)
	h := ctrltest.StartHosts(t, 1, simagent.Options{KubeletBinaries: kubelets(base, exporter, newer)})[0]
	joinOn(t, h, base, "v1.37.2", "v1.37.2")

	// The in-place upgrade is recorded; its upload (1 MiB at 64 KiB/s) is
	// cut short by the operator's stop.
	h.Host.SetBandwidth(64 << 10)
	_, stop := ctrltest.StartStoppableOperator(t, ctrltest.OperatorOptions{
		Payloads: payload.NewCatalog(exporter), ServerVersion: core.StaticVersion("v1.37.2"),
	})
	g.Eventually(func(g Gomega) {
		u := getInstance(g, h.Name).Status.Upgrade
		g.Expect(u).NotTo(BeNil())
		g.Expect(u.InPlace).To(BeTrue())
		g.Expect(u.To).To(Equal(exporter.Manifest.Version))
	}).WithTimeout(time.Minute).WithPolling(50 * time.Millisecond).Should(Succeed())
	stop()
	h.Host.SetBandwidth(0)
	g.Expect(getInstance(g, h.Name).Status.PayloadVersion).To(Equal(base.Manifest.Version), "the host was not upgraded yet")

	obs := observe(t, []*ctrltest.SimHost{h})
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{
		Payloads: payload.NewCatalog(exporter, newer), ServerVersion: core.StaticVersion("v1.37.3"),
	})
	waitOnPayload(t, h.Name, newer.Manifest.Version, "v1.37.3", 2*time.Minute)
	wi := getInstance(g, h.Name)
	g.Expect(obs.Result().Cordoned).To(ConsistOf(wi.Status.NodeName), "drained for the new kubelet")
	g.Expect(meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionUpgrading).Reason).To(Equal(instance.ReasonUpgradeSucceeded))
	node := &corev1.Node{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: wi.Status.NodeName}, node)).To(Succeed())
	g.Expect(node.Spec.Unschedulable).To(BeFalse(), "uncordoned after the upgrade")
	deleteAll(t, []*ctrltest.SimHost{h})
}
