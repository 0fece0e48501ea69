package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
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

// On plain Kubernetes with network type Flannel and no network flag, the
// pod network is read from kube-flannel's ConfigMap and the service CIDR
// from the API server's ServiceCIDR. A WindowsNodeConfig that would give
// Windows hosts another pod network, then another VNI, is reported on the
// instance as ClusterConfigCompatible=False, reason ClusterNetworkMismatch,
// naming both values and where each came from, with a Warning Event; no
// host is connected to. Fixing the WindowsNodeConfig clears it.
func TestFlannelNetworkMismatchIsACondition(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: cluster.FlannelConfigMapName},
		Data: map[string]string{cluster.FlannelNetConfKey: `{"Network": "` + localcluster.ClusterCIDR + `",
  "Backend": {"Type": "vxlan", "VNI": 4096, "Port": 4789}}`},
	}
	g.Expect(ctrltest.Client.Create(ctx, cm)).To(Succeed())
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), cm) })
	ctrltest.SetNodeConfig(t, func(spec *wmcov1.WindowsNodeConfigSpec) {
		spec.Network = wmcov1.NetworkSpec{Type: wmcov1.NetworkFlannel, ClusterNetworkCIDR: "10.200.0.0/16"}
	})

	// The operator is given no service or cluster CIDR.
	src := clusterconfig.New(nodeconfig.ClusterFacts{
		APIServerURL: ctrltest.Cluster.Host, CACertPEM: ctrltest.Cluster.CACert, DNSIP: "10.0.0.10", KubernetesVersion: localcluster.DefaultKubernetesVersion,
	}, core.Config{Namespace: ctrltest.Namespace, Platform: cluster.Kubernetes})
	ctrltest.StartManagerWithGeneratedRBAC(t, "system:serviceaccount:wmco-system:flannel-network", func(mgr ctrl.Manager) error {
		return src.SetupWithManager(mgr)
	})
	g.Eventually(func(g Gomega) {
		f, problem := src.ClusterFacts()
		g.Expect(problem).To(BeEmpty())
		g.Expect(f.ClusterNetworkCIDR).To(Equal(localcluster.ClusterCIDR))
		g.Expect(f.ServiceCIDR).To(Equal(localcluster.ServiceCIDR))
		g.Expect(f.Flannel).To(Equal(nodeconfig.FlannelFacts{Source: "kube-system/kube-flannel-cfg", Network: localcluster.ClusterCIDR, Backend: "vxlan", VNI: 4096, Port: 4789}))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	hosts := ctrltest.StartHosts(t, 1, simagent.Options{})
	h := hosts[0]
	dialer := ctrltest.StartOperator(t, ctrltest.OperatorOptions{ClusterSource: src})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	condition := func(g Gomega) *metav1.Condition {
		wi := &wmcov1.WindowsInstance{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, wi)).To(Succeed())
		c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionClusterConfigCompatible)
		g.Expect(c).NotTo(BeNil())
		if c.Status == metav1.ConditionFalse {
			g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhasePending))
		}
		return c
	}
	expectMismatch := func(parts ...string) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			c := condition(g)
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(instance.ReasonClusterNetworkMismatch))
			for _, p := range parts {
				g.Expect(c.Message).To(ContainSubstring(p))
			}
			t.Logf("condition: %s", c.Message)
		}).WithTimeout(time.Minute).Should(Succeed())
	}
	// The recorder makes later Events of the same reason on the instance
	// a series of the first, which keeps the first's note.
	expectEvent := func(parts ...string) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			evs, err := ctrltest.Clientset.EventsV1().Events(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			var notes []string
			for _, e := range evs.Items {
				if e.Regarding.Name == h.Name && e.Reason == instance.ReasonClusterNetworkMismatch && e.Type == corev1.EventTypeWarning {
					notes = append(notes, e.Note)
				}
			}
			g.Expect(notes).To(ContainElement(And(ContainSubstring(parts[0]), ContainSubstring(parts[1]))))
		}).WithTimeout(20 * time.Second).Should(Succeed())
	}

	cidrMismatch := []string{"the cluster network 10.200.0.0/16 (WindowsNodeConfig cluster spec.network.clusterNetworkCIDR)",
		"Network " + localcluster.ClusterCIDR + " in net-conf.json of ConfigMap kube-system/kube-flannel-cfg"}
	expectMismatch(cidrMismatch...)
	expectEvent(cidrMismatch...)
	g.Consistently(dialer.Dials.Load).WithTimeout(3*time.Second).Should(BeZero(), "no host is connected to")

	ctrltest.SetNodeConfig(t, func(spec *wmcov1.WindowsNodeConfigSpec) {
		spec.Network.ClusterNetworkCIDR = ""
		spec.Network.Flannel = &wmcov1.FlannelSpec{VNI: ptr.To[int32](4097)}
	})
	expectMismatch("the VXLAN VNI 4097 (WindowsNodeConfig cluster spec.network.flannel.vni)",
		"Backend.VNI 4096 in net-conf.json of ConfigMap kube-system/kube-flannel-cfg")
	g.Expect(dialer.Dials.Load()).To(BeZero(), "no host is connected to")

	ctrltest.SetNodeConfig(t, func(spec *wmcov1.WindowsNodeConfigSpec) { spec.Network.Flannel = nil })
	g.Eventually(func(g Gomega) {
		c := condition(g)
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "%s: %s", c.Reason, c.Message)
		g.Expect(c.Reason).To(Equal(instance.ReasonClusterConfigRead))
	}).WithTimeout(time.Minute).Should(Succeed())
	ctrltest.DeleteAndWait(t, h.Name, 2*time.Minute)
}
