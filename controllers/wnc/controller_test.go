package wnc_test

import (
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/wnc"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/localcluster"
)

func TestMain(m *testing.M) { os.Exit(ctrltest.Run(m)) }

// The running operator says on the WindowsNodeConfig whether its spec can
// configure hosts in this cluster, and follows edits.
func TestWindowsNodeConfigStatus(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{})
	// The service network is 10.0.0.0/24: a cluster network over it cannot work.
	ctrltest.SetNodeConfig(t, func(spec *wmcov1.WindowsNodeConfigSpec) {
		spec.Network.ClusterNetworkCIDR = localcluster.ServiceCIDR
	})
	get := func(g Gomega) *wmcov1.WindowsNodeConfig {
		cfg := &wmcov1.WindowsNodeConfig{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: wmcov1.WindowsNodeConfigName}, cfg)).To(Succeed())
		g.Expect(cfg.Status.ObservedGeneration).To(Equal(cfg.Generation))
		return cfg
	}
	g.Eventually(func(g Gomega) {
		cfg := get(g)
		ready := meta.FindStatusCondition(cfg.Status.Conditions, wmcov1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(wnc.ReasonInvalid))
		g.Expect(ready.Message).To(ContainSubstring("config.network.clusterNetworkCIDR"))
		g.Expect(meta.IsStatusConditionTrue(cfg.Status.Conditions, wmcov1.ConditionStalled)).To(BeTrue())
	}).WithTimeout(30 * time.Second).Should(Succeed())

	ctrltest.SetNodeConfig(t, func(spec *wmcov1.WindowsNodeConfigSpec) {
		spec.Network.ClusterNetworkCIDR = localcluster.ClusterCIDR
	})
	g.Eventually(func(g Gomega) {
		cfg := get(g)
		g.Expect(meta.IsStatusConditionTrue(cfg.Status.Conditions, wmcov1.ConditionReady)).To(BeTrue())
		g.Expect(meta.FindStatusCondition(cfg.Status.Conditions, wmcov1.ConditionStalled)).To(BeNil())
	}).WithTimeout(30 * time.Second).Should(Succeed())
}
