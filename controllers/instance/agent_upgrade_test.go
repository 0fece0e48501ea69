package instance_test

import (
	"io/fs"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// A host whose agent service runs an older agent: Windows (and the
// simulator) refuse to upload over it, so the operator stages the new agent
// and lets it replace the old one (wicdapi's upgrade protocol); the service
// then runs the new agent and the host joins.
func TestOlderRunningAgentIsUpgradedInPlace(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{})
	h := hosts[0]
	disk := h.Host.Disk()
	old := simagent.AgentImage("old")
	g.Expect(disk.WriteFile(wicdapi.AgentPath, old)).To(Succeed())
	g.Expect(h.Services.Create(ctx, wicdapi.Service{Name: wicdapi.AgentServiceName, Binary: wicdapi.AgentPath, Args: []string{"run"}})).To(Succeed())
	g.Expect(h.Services.Start(ctx, wicdapi.AgentServiceName)).To(Succeed())
	g.Eventually(h.AgentServiceVersion).Should(Equal("old"))

	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 1})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	ctrltest.WaitReady(t, h.Name, 90*time.Second)

	g.Eventually(h.AgentServiceVersion).Should(Equal("sim"), "the service runs the payload's agent")
	g.Expect(disk.ReadFile(wicdapi.AgentPreviousPath)).To(Equal(old), "the old agent is kept for rollback")
	g.Expect(disk.ReadFile(wicdapi.AgentPath)).NotTo(Equal(old))
	g.Eventually(func(g Gomega) []string {
		evs, err := ctrltest.Clientset.EventsV1().Events(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		var reasons []string
		for _, e := range evs.Items {
			if e.Regarding.Name == h.Name {
				reasons = append(reasons, e.Reason)
			}
		}
		return reasons
	}).Should(ContainElement("AgentUpgraded"))

	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
	ctrltest.ExpectHostClean(g, h)
}

// A host without the agent (its first contact) gets it uploaded straight
// into place, verified by certutil: no staging, no self-upgrade, nothing
// read back.
func TestNewHostGetsTheAgentInPlace(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{})
	h := hosts[0]
	var log winsim.RequestLog
	defer log.Record(h.Host)()
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 1})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	ctrltest.WaitReady(t, h.Name, 90*time.Second)

	g.Expect(h.Host.Disk().Stat(wicdapi.AgentStagingPath)).Error().To(MatchError(fs.ErrNotExist), "nothing staged")
	seen := log.Requests()
	g.Expect(seen).To(ContainElement(`exec certutil.exe -hashfile C:\k\wicd.exe.wmco-upload SHA256`))
	g.Expect(seen).NotTo(ContainElement(ContainSubstring("self-upgrade")))

	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
	ctrltest.ExpectHostClean(g, h)
}

// Deleting the hybrid-overlay HNS networks resets the SSH session running
// cleanup: the operator reconnects, runs cleanup again, and the host ends
// clean, both networks gone.
func TestCleanupSurvivesTheSessionResetByNetworkRemoval(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{NetworkDeleteResetsConnections: true})
	h := hosts[0]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 1})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	ctrltest.WaitReady(t, h.Name, 90*time.Second)
	g.Eventually(h.Networks).Should(ConsistOf(simagent.HybridOverlayNetwork, simagent.BaseHybridOverlayNetwork))
	connections := h.Host.Stats().Connections

	ctrltest.DeleteAndWait(t, h.Name, 90*time.Second)
	ctrltest.ExpectHostClean(g, h)
	g.Expect(h.Host.Stats().Connections).To(BeNumerically(">", connections), "the operator connected again")
}
