//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/inventory"
)

// machineJoin is what the spec remembers of a Machine that joined.
type machineJoin struct {
	machine, instance, node string
}

// The machineset spec scales a Windows MachineSet 0 → 3 → 1 → 0: three
// Ready, tainted Nodes, then one, then none; every host cleaned and its
// Node deleted before its VM went away; no orphan Node or instance. On the
// local provider the MachineSet is a simulated cloud's; on byoh it is the
// one WMCO_E2E_MACHINESET names (skipped without it).
var _ = Describe("Windows MachineSets", Ordered, Label("machineset"), func() {
	var ms *machinev1beta1.MachineSet

	BeforeAll(func(ctx SpecContext) {
		var err error
		ms, err = p.MachineSet(ctx)
		Expect(err).NotTo(HaveOccurred())
		if ms == nil {
			Skip("the provider has no Windows MachineSet (byoh: set WMCO_E2E_MACHINESET)")
		}
	})

	AfterEach(func(ctx SpecContext) {
		if CurrentSpecReport().Failed() {
			dumpState(ctx)
		}
	})

	AfterAll(func(ctx SpecContext) {
		if ms != nil {
			scaleMachineSet(ctx, ms, 0)
		}
	})

	It("scales a Windows MachineSet 0 → 3 → 1 → 0 with every host cleaned before its VM goes", func(ctx SpecContext) {
		By("Scaling " + ms.Name + " to 3")
		scaleMachineSet(ctx, ms, 3)
		joined := waitMachinesReady(ctx, ms, 3)
		for _, j := range joined {
			By(fmt.Sprintf("Machine %s is Node %s", j.machine, j.node))
			node := &corev1.Node{}
			Expect(p.Client().Get(ctx, client.ObjectKey{Name: j.node}, node)).To(Succeed())
			expectWindowsNode(node, j.instance)
			expectKubeletCSRsApproved(ctx, j.node)
		}

		By("Scaling to 1")
		scaleMachineSet(ctx, ms, 1)
		kept := waitMachinesReady(ctx, ms, 1)
		Expect(joined).To(ContainElement(kept[0]), "the kept Machine is one of the three, not a new one")
		for _, j := range joined {
			if j != kept[0] {
				expectMachineGone(ctx, j)
			}
		}

		By("Scaling to 0")
		scaleMachineSet(ctx, ms, 0)
		Eventually(ctx, func(g Gomega) { g.Expect(machinesOf(ctx, g, ms)).To(BeEmpty()) }).
			WithTimeout(p.Timeouts().Remove).WithPolling(poll).Should(Succeed())
		expectMachineGone(ctx, kept[0])
	})

	It("scales down past a VM that died, giving its host up after the access timeout", func(ctx SpecContext) {
		By("Scaling " + ms.Name + " to 1")
		scaleMachineSet(ctx, ms, 1)
		j := waitMachinesReady(ctx, ms, 1)[0]
		By("Powering off the VM of Machine " + j.machine + " for good")
		if err := p.KillMachineVM(ctx, j.machine); errors.Is(err, errors.ErrUnsupported) {
			Skip("the provider cannot power a VM off")
		} else {
			Expect(err).NotTo(HaveOccurred())
		}

		By("Scaling to 0")
		scaleMachineSet(ctx, ms, 0)
		Eventually(ctx, func(g Gomega) {
			_, err := getInstance(ctx, j.instance)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "WindowsInstance %s", j.instance)
			err = p.Client().Get(ctx, client.ObjectKey{Name: j.node}, &corev1.Node{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Node %s", j.node)
			g.Expect(machinesOf(ctx, g, ms)).To(BeEmpty())
			p.ExpectMachineAbandoned(g, j.machine, j.node)
		}).WithTimeout(p.MachineAccessTimeout() + p.Timeouts().Remove).WithPolling(poll).Should(Succeed())
		var events corev1.EventList
		Expect(p.Client().List(ctx, &events, client.InNamespace(ms.Namespace))).To(Succeed())
		var abandoned []string
		for _, e := range events.Items {
			if e.InvolvedObject.Kind == "Machine" && e.InvolvedObject.Name == j.machine && e.Reason == inventory.EventMachineHostAbandoned {
				abandoned = append(abandoned, e.Message)
			}
		}
		Expect(abandoned).To(ConsistOf(ContainSubstring("without cleaning the host")), "one Warning on the Machine")
	})
})

// scaleMachineSet sets the MachineSet's replicas.
func scaleMachineSet(ctx context.Context, ms *machinev1beta1.MachineSet, n int32) {
	patch := client.RawPatch("application/merge-patch+json", []byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)))
	Expect(p.Client().Patch(ctx, ms.DeepCopy(), patch)).To(Succeed())
}

// machinesOf lists the MachineSet's Machines.
func machinesOf(ctx context.Context, g Gomega, ms *machinev1beta1.MachineSet) []machinev1beta1.Machine {
	var list machinev1beta1.MachineList
	g.Expect(p.Client().List(ctx, &list, client.InNamespace(ms.Namespace), client.MatchingLabels(ms.Spec.Selector.MatchLabels))).To(Succeed())
	return list.Items
}

// waitMachinesReady waits until the MachineSet has n Machines, none being
// deleted, each with a Ready instance and a Ready Node.
func waitMachinesReady(ctx context.Context, ms *machinev1beta1.MachineSet, n int) []machineJoin {
	var out []machineJoin
	Eventually(ctx, func(g Gomega) {
		out = nil
		machines := machinesOf(ctx, g, ms)
		g.Expect(machines).To(HaveLen(n))
		for _, m := range machines {
			g.Expect(m.DeletionTimestamp.IsZero()).To(BeTrue(), "Machine %s is being deleted", m.Name)
			name := inventory.MachineInstanceName(m.Namespace, m.Name)
			wi, err := getInstance(ctx, name)
			g.Expect(err).NotTo(HaveOccurred(), "WindowsInstance of Machine %s", m.Name)
			g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseReady), "WindowsInstance %s: %s", name, wi.Status.Message)
			node := &corev1.Node{}
			g.Expect(p.Client().Get(ctx, client.ObjectKey{Name: wi.Status.NodeName}, node)).To(Succeed())
			g.Expect(nodeReady(node)).To(BeTrue(), "Node %s", node.Name)
			out = append(out, machineJoin{machine: m.Name, instance: name, node: node.Name})
		}
	}).WithTimeout(p.Timeouts().Join + time.Minute).WithPolling(poll).Should(Succeed())
	return out
}

// expectMachineGone waits until the Machine, its instance and its Node are
// gone, then asks the provider whether the host was clean before its VM
// was destroyed.
func expectMachineGone(ctx context.Context, j machineJoin) {
	Eventually(ctx, func(g Gomega) {
		_, err := getInstance(ctx, j.instance)
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "WindowsInstance %s", j.instance)
		err = p.Client().Get(ctx, client.ObjectKey{Name: j.node}, &corev1.Node{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Node %s", j.node)
		p.ExpectMachineCleaned(g, j.machine, j.node)
	}).WithTimeout(p.Timeouts().Remove).WithPolling(poll).Should(Succeed())
}
