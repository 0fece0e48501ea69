package instance_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/clusterconfig"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/localcluster"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// An instance created while the cluster Source has not read the cluster's
// configuration yet says so (ClusterConfigCompatible=False) and touches
// no host; once the Source has read it, its change wakes the instance,
// which goes on to join. The wake-up is the Source's OnChange, not the
// instance's safety-net requeue for a cluster problem (15 s): the
// condition clears well within that.
func TestInstanceLeavesReadingTheClusterConfiguration(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	h := ctrltest.StartHosts(t, 1, simagent.Options{})[0]
	src := clusterconfig.New(nodeconfig.ClusterFacts{
		APIServerURL: ctrltest.Cluster.Host, CACertPEM: ctrltest.Cluster.CACert, ServiceCIDR: localcluster.ServiceCIDR,
		ClusterNetworkCIDR: localcluster.ClusterCIDR, DNSIP: "10.0.0.10", KubernetesVersion: localcluster.DefaultKubernetesVersion,
	}, core.Config{Namespace: ctrltest.Namespace, Platform: cluster.Kubernetes})
	dialer := ctrltest.StartOperator(t, ctrltest.OperatorOptions{ClusterSource: src})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())

	condition := func(g Gomega) *metav1.Condition {
		wi := &wmcov1.WindowsInstance{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, wi)).To(Succeed())
		c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionClusterConfigCompatible)
		g.Expect(c).NotTo(BeNil())
		return c
	}
	g.Eventually(func(g Gomega) {
		c := condition(g)
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(instance.ReasonClusterConfigIncomplete))
		g.Expect(c.Message).To(HavePrefix(core.ClusterProblemReading))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(dialer.Dials.Load()).To(BeZero(), "no host is touched before the configuration was read")

	ctrltest.StartManagerWithGeneratedRBAC(t, "system:serviceaccount:wmco-system:cluster-reading", func(mgr ctrl.Manager) error {
		return src.SetupWithManager(mgr)
	})
	g.Eventually(func() string { _, problem := src.ClusterFacts(); return problem }).WithTimeout(30 * time.Second).Should(BeEmpty())
	// Within the safety net's 15 s: only the wake-up can do it.
	g.Eventually(func(g Gomega) {
		c := condition(g)
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "%s: %s", c.Reason, c.Message)
	}).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	ctrltest.WaitReady(t, h.Name, 2*time.Minute)
	ctrltest.DeleteAndWait(t, h.Name, time.Minute)
}
