//go:build e2e

package e2e

import (
	"context"
	"errors"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
)

// The specs share one environment and run in order: create joins every
// host, the later specs change one thing and put it back, destroy removes
// the suite's own WindowsInstance, and AfterAll unlists the rest.
var _ = Describe("Windows hosts", Ordered, func() {
	var (
		// listed are the hosts of the windows-instances ConfigMap.
		listed []Host
		// direct is the host of a WindowsInstance the suite creates.
		direct Host
	)

	BeforeAll(func() {
		hosts := p.Hosts()
		listed, direct = hosts[:len(hosts)-1], hosts[len(hosts)-1]
	})

	AfterEach(func(ctx SpecContext) {
		if CurrentSpecReport().Failed() {
			dumpState(ctx)
		}
	})

	AfterAll(func(ctx SpecContext) {
		By("Unlisting the hosts and deleting the suite's WindowsInstance; every host ends clean")
		for _, h := range listed {
			setInventoryEntry(ctx, h.Address, "")
		}
		err := p.Client().Delete(ctx, &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: directName(direct)}})
		Expect(client.IgnoreNotFound(err)).To(Succeed())
		for _, h := range listed {
			waitInstanceGone(ctx, inventoryName(h))
		}
		waitInstanceGone(ctx, directName(direct))
		for _, h := range p.Hosts() {
			waitHostClean(ctx, h)
		}
	})

	Describe("create", func() {
		It("joins the hosts of the ConfigMap and of a WindowsInstance as labelled, tainted Windows nodes", func(ctx SpecContext) {
			By("Listing hosts in the windows-instances ConfigMap")
			for _, h := range listed {
				setInventoryEntry(ctx, h.Address, inventoryValue(h))
			}
			By("Creating a WindowsInstance for another host")
			Expect(p.Client().Create(ctx, &wmcov1.WindowsInstance{
				ObjectMeta: metav1.ObjectMeta{Name: directName(direct)},
				Spec:       wmcov1.WindowsInstanceSpec{Address: direct.Address, Port: int32(direct.Port), Username: p.Username()},
			})).To(Succeed())

			for _, name := range append(inventoryNames(listed), directName(direct)) {
				By("Waiting for " + name + " and its Node to be Ready")
				node := waitInstanceReady(ctx, name)
				expectWindowsNode(node, name)
				By("Checking the kubelet CSRs of Node " + node.Name)
				expectKubeletCSRsApproved(ctx, node.Name)
			}
			wi, err := getInstance(ctx, inventoryName(listed[0]))
			Expect(err).NotTo(HaveOccurred())
			Expect(wi.Labels).To(HaveKeyWithValue(wmcov1.LabelSource, wmcov1.SourceConfigMap))
		})
	})

	Describe("reconfigure", func() {
		It("deconfigures a host removed from the ConfigMap and joins it again when it is listed back", func(ctx SpecContext) {
			h := listed[0]
			name := inventoryName(h)
			wi, err := getInstance(ctx, name)
			Expect(err).NotTo(HaveOccurred())
			nodeName := wi.Status.NodeName
			others := nodeUIDs(ctx, append(inventoryNames(listed[1:]), directName(direct))...)

			By("Removing " + h.Address + " from the ConfigMap")
			setInventoryEntry(ctx, h.Address, "")
			waitInstanceGone(ctx, name)
			expectNodeGone(ctx, nodeName)
			waitHostClean(ctx, h)

			By("Listing it again")
			setInventoryEntry(ctx, h.Address, inventoryValue(h))
			node := waitInstanceReady(ctx, name)
			Expect(node.Name).To(Equal(nodeName))
			expectWindowsNode(node, name)

			By("The other hosts kept their Nodes")
			for instance, uid := range others {
				Expect(waitInstanceReady(ctx, instance).UID).To(Equal(uid), "Node of %s", instance)
			}
		})

		It("carries a changed ConfigMap entry to the host's WindowsInstance", func(ctx SpecContext) {
			h := listed[0]
			name := inventoryName(h)
			wi, err := getInstance(ctx, name)
			Expect(err).NotTo(HaveOccurred())
			nodeName := wi.Status.NodeName
			renamed := nodeName + "-renamed"

			By("Setting nodeName=" + renamed + " in the entry of " + h.Address)
			setInventoryEntry(ctx, h.Address, inventoryValue(h, "nodeName="+renamed))
			Eventually(ctx, func(g Gomega) {
				wi, err := getInstance(ctx, name)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(wi.Spec.NodeName).To(Equal(renamed))
				g.Expect(wi.Status.NodeName).To(Equal(renamed))
			}).WithTimeout(p.Timeouts().Recover).WithPolling(poll).Should(Succeed())
			By("Waiting for the host to join again as " + renamed)
			node := waitInstanceReady(ctx, name)
			Expect(node.Name).To(Equal(renamed))
			expectWindowsNode(node, name)
			Eventually(ctx, func() bool {
				return apierrors.IsNotFound(p.Client().Get(ctx, client.ObjectKey{Name: nodeName}, &corev1.Node{}))
			}).WithTimeout(p.Timeouts().Remove).WithPolling(poll).Should(BeTrue(), "the Node under the old name is deleted")

			By("Restoring the entry")
			setInventoryEntry(ctx, h.Address, inventoryValue(h))
			Eventually(ctx, func(g Gomega) {
				wi, err := getInstance(ctx, name)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(wi.Spec.NodeName).To(BeEmpty())
				g.Expect(wi.Status.NodeName).To(Equal(nodeName))
			}).WithTimeout(p.Timeouts().Recover).WithPolling(poll).Should(Succeed())
			node = waitInstanceReady(ctx, name)
			Expect(node.Name).To(Equal(nodeName))
			expectWindowsNode(node, name)
		})
	})

	Describe("service drift", func() {
		It("starts kube-proxy again after it is stopped on a Ready host", func(ctx SpecContext) {
			h := listed[0]
			waitInstanceReady(ctx, inventoryName(h))
			var before ServiceState
			Eventually(ctx, func(g Gomega) {
				var err error
				before, err = p.Service(ctx, h, "kube-proxy")
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(before.Running).To(BeTrue(), "kube-proxy is not running on %s", h)
			}).WithTimeout(p.Timeouts().Join).WithPolling(poll).Should(Succeed())

			By("Stopping kube-proxy on " + h.String())
			Expect(p.StopService(ctx, h, "kube-proxy")).To(Succeed())
			Eventually(ctx, func(g Gomega) {
				st, err := p.Service(ctx, h, "kube-proxy")
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(st.Running).To(BeTrue(), "kube-proxy is not running")
				g.Expect(st.Instance).NotTo(Equal(before.Instance), "kube-proxy was not restarted")
			}).WithTimeout(p.Timeouts().Recover).WithPolling(poll).Should(Succeed())
			waitInstanceReady(ctx, inventoryName(h))
		})
	})

	Describe("reboot", func() {
		It("brings a rebooted host back as the same Ready node", func(ctx SpecContext) {
			name := directName(direct)
			node := waitInstanceReady(ctx, name)

			By("Rebooting " + direct.String())
			Expect(p.Reboot(ctx, direct)).To(Succeed())
			Eventually(ctx, func(g Gomega) {
				n := &corev1.Node{}
				g.Expect(p.Client().Get(ctx, client.ObjectKey{Name: node.Name}, n)).To(Succeed())
				g.Expect(nodeReady(n)).To(BeFalse(), "Node %s is still Ready", node.Name)
			}).WithTimeout(p.Timeouts().Reboot).WithPolling(poll).Should(Succeed())

			By("Waiting for the Node to be Ready again")
			after := waitInstanceReady(ctx, name)
			Expect(after.Name).To(Equal(node.Name))
			Expect(after.UID).To(Equal(node.UID))
		})
	})

	Describe("metrics", func() {
		It("reports Ready instances and approved CSRs", func(ctx SpecContext) {
			if _, err := p.MetricsText(ctx); errors.Is(err, ErrMetricsUnavailable) {
				Skip(err.Error())
			}
			Eventually(ctx, func(g Gomega) {
				text, err := p.MetricsText(ctx)
				g.Expect(err).NotTo(HaveOccurred())
				var list wmcov1.WindowsInstanceList
				g.Expect(p.Client().List(ctx, &list)).To(Succeed())
				ready := 0
				for _, wi := range list.Items {
					if wi.Status.Phase == wmcov1.PhaseReady {
						ready++
					}
				}
				g.Expect(ready).To(BeNumerically(">=", len(p.Hosts())), "Ready WindowsInstances")
				v, ok := metricValue(text, `wmco_instances{phase="Ready"}`)
				g.Expect(ok).To(BeTrue(), "no wmco_instances{phase=\"Ready\"}")
				g.Expect(v).To(BeNumerically("==", ready))
				v, ok = metricValue(text, `wmco_csr_decisions_total{result="approved"}`)
				g.Expect(ok).To(BeTrue(), "no wmco_csr_decisions_total{result=\"approved\"}")
				g.Expect(v).To(BeNumerically(">=", 2))
			}).WithTimeout(p.Timeouts().Recover).WithPolling(poll).Should(Succeed())
		})
	})

	Describe("destroy", func() {
		It("removes the Node and cleans the host when its WindowsInstance is deleted", func(ctx SpecContext) {
			name := directName(direct)
			wi, err := getInstance(ctx, name)
			Expect(err).NotTo(HaveOccurred())
			nodeName := wi.Status.NodeName

			By("Deleting WindowsInstance " + name)
			Expect(p.Client().Delete(ctx, wi)).To(Succeed())
			waitInstanceGone(ctx, name)
			expectNodeGone(ctx, nodeName)
			waitHostClean(ctx, direct)
		})
	})
})

// inventoryNames are the WindowsInstances of listed hosts.
func inventoryNames(hosts []Host) []string {
	names := make([]string, 0, len(hosts))
	for _, h := range hosts {
		names = append(names, inventoryName(h))
	}
	return names
}

// nodeUIDs maps WindowsInstances to the UIDs of their Nodes.
func nodeUIDs(ctx context.Context, instances ...string) map[string]types.UID {
	uids := map[string]types.UID{}
	for _, name := range instances {
		wi, err := getInstance(ctx, name)
		Expect(err).NotTo(HaveOccurred())
		node := &corev1.Node{}
		Expect(p.Client().Get(ctx, client.ObjectKey{Name: wi.Status.NodeName}, node)).To(Succeed())
		uids[name] = node.UID
	}
	return uids
}

// dumpState prints the instances, the Nodes and the provider's
// diagnostics after a failed spec.
func dumpState(ctx context.Context) {
	var list wmcov1.WindowsInstanceList
	if err := p.Client().List(ctx, &list); err == nil {
		for _, wi := range list.Items {
			GinkgoWriter.Printf("WindowsInstance %s: phase %s, node %q: %s\n", wi.Name, wi.Status.Phase, wi.Status.NodeName, wi.Status.Message)
		}
	}
	var nodes corev1.NodeList
	if err := p.Client().List(ctx, &nodes); err == nil {
		for _, n := range nodes.Items {
			GinkgoWriter.Printf("Node %s: Ready=%v\n", n.Name, nodeReady(&n))
		}
	}
	GinkgoWriter.Println(p.Diagnostics())
}
