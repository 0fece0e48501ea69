package inventory_test

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/inventory"
	"github.com/openwmco/wmco/test/ctrltest"
)

// The Machine tests put their Machines in a namespace of their own, so
// their WindowsInstance names (which then carry a hash of the namespace)
// are theirs alone.

// inventoryStartMachineController runs the Machine controller.
func inventoryStartMachineController(t *testing.T) {
	t.Helper()
	ctrltest.StartManager(t, func(mgr ctrl.Manager) error {
		return (&inventory.MachineReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("wmco-machine-controller")}).SetupWithManager(mgr)
	})
}

// inventoryMachine creates a Machine with labels and, when addrs are given,
// those status addresses; it is deleted when the test ends.
func inventoryMachine(t *testing.T, namespace, name string, labels map[string]string, addrs ...corev1.NodeAddress) *machinev1beta1.Machine {
	t.Helper()
	m := &machinev1beta1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels}}
	if err := ctrltest.Client.Create(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), m) })
	inventoryDeleteInstancesAtEnd(t, inventory.MachineInstanceName(namespace, name))
	if len(addrs) > 0 {
		// The Machine controller may have added its hook meanwhile.
		inventoryUpdateMachine(NewWithT(t), m, true, func(m *machinev1beta1.Machine) { m.Status.Addresses = addrs })
	}
	return m
}

// inventoryUpdateMachine applies change to the Machine's latest version;
// status says whether change is to the status subresource.
func inventoryUpdateMachine(g *WithT, m *machinev1beta1.Machine, status bool, change func(*machinev1beta1.Machine)) {
	g.Eventually(func() error {
		if err := ctrltest.Client.Get(context.Background(), client.ObjectKeyFromObject(m), m); err != nil {
			return err
		}
		change(m)
		if status {
			return ctrltest.Client.Status().Update(context.Background(), m)
		}
		return ctrltest.Client.Update(context.Background(), m)
	}).WithTimeout(inventoryTimeout).Should(Succeed())
}

func inventoryWindowsLabels() map[string]string {
	return map[string]string{wmcov1.MachineOSIDLabel: "Windows"}
}

func inventoryInternalIP(ip string) corev1.NodeAddress {
	return corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip}
}

// A Machine that stops being managed keeps its deconfigure hook until its
// instance is gone, as a Machine being deleted does: deleted while its
// host is still drained and cleaned, it would otherwise have its VM
// removed under the cleanup.
func TestUnmanagedMachineKeepsItsHookUntilTheInstanceIsGone(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := inventoryNamespace(t)
	inventoryStartMachineController(t)
	m := inventoryMachine(t, ns, "leaving", inventoryWindowsLabels(), inventoryInternalIP("10.78.2.10"))
	name := inventory.MachineInstanceName(ns, m.Name)
	hooked := func(g Gomega) bool {
		got := &machinev1beta1.Machine{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKeyFromObject(m), got)).To(Succeed())
		return slices.ContainsFunc(got.Spec.LifecycleHooks.PreDrain, func(h machinev1beta1.LifecycleHook) bool {
			return h.Name == inventory.MachineDeconfigureHook.Name
		})
	}
	g.Eventually(func(g Gomega) {
		_, err := inventoryInstance(name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(hooked(g)).To(BeTrue())
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())

	// A finalizer of the test's stands for the instance controller's:
	// the host is being cleaned.
	const cleaning = "test.wmco.io/cleaning"
	g.Eventually(func() error {
		wi, err := inventoryInstance(name)
		if err != nil {
			return err
		}
		wi.Finalizers = append(wi.Finalizers, cleaning)
		return ctrltest.Client.Update(ctx, wi)
	}).WithTimeout(inventoryTimeout).Should(Succeed())
	inventoryUpdateMachine(g, m, false, func(m *machinev1beta1.Machine) { m.Labels[wmcov1.MachineIgnoreLabel] = "true" })
	g.Eventually(func(g Gomega) {
		wi, err := inventoryInstance(name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(wi.DeletionTimestamp).NotTo(BeNil())
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	// Before, the same reconcile that deleted the instance removed the
	// hook.
	g.Consistently(hooked).WithTimeout(2*time.Second).WithPolling(inventoryPoll).Should(BeTrue(), "the hook stays while the host is cleaned")

	g.Eventually(func() error {
		wi, err := inventoryInstance(name)
		if err != nil {
			return err
		}
		wi.Finalizers = slices.DeleteFunc(wi.Finalizers, func(f string) bool { return f == cleaning })
		return ctrltest.Client.Update(ctx, wi)
	}).WithTimeout(inventoryTimeout).Should(Succeed())
	g.Eventually(inventoryGone(name)).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	g.Eventually(hooked).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(BeFalse(), "the hook goes with the instance")
}

func TestMachineInstanceFollowsItsMachine(t *testing.T) {
	g := NewWithT(t)
	ns := inventoryNamespace(t)
	inventoryStartMachineController(t)

	linux := inventoryMachine(t, ns, "linux", map[string]string{wmcov1.MachineOSIDLabel: "Linux"}, inventoryInternalIP("10.78.1.10"))
	ignoredLabels := inventoryWindowsLabels()
	ignoredLabels[wmcov1.MachineIgnoreLabel] = "true"
	ignored := inventoryMachine(t, ns, "ignored", ignoredLabels, inventoryInternalIP("10.78.1.11"))
	pending := inventoryMachine(t, ns, "pending", inventoryWindowsLabels())
	// Created last: once its instance exists, the Machines before it have
	// been seen.
	witness := inventoryMachine(t, ns, "witness", inventoryWindowsLabels(), inventoryInternalIP("10.78.1.13"))

	witnessName := inventory.MachineInstanceName(ns, witness.Name)
	g.Eventually(func(g Gomega) {
		wi, err := inventoryInstance(witnessName)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(wi.Labels).To(HaveKeyWithValue(wmcov1.LabelSource, wmcov1.SourceMachine))
		g.Expect(wi.Annotations).To(HaveKeyWithValue(wmcov1.AnnotationMachine, ns+"/witness"))
		g.Expect(wi.Spec).To(Equal(wmcov1.WindowsInstanceSpec{
			Address:  "10.78.1.13",
			Port:     wmcov1.DefaultSSHPort,
			Username: "Administrator",
			CredentialsSecretRef: wmcov1.SecretKeyReference{
				Name: wmcov1.DefaultCredentialsSecretName,
				Key:  wmcov1.DefaultCredentialsSecretKey,
			},
		}))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	g.Consistently(func(g Gomega) {
		for _, m := range []*machinev1beta1.Machine{linux, ignored, pending} {
			_, err := inventoryInstance(inventory.MachineInstanceName(ns, m.Name))
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "WindowsInstance of Machine %s: %v", m.Name, err)
		}
	}).WithTimeout(time.Second).WithPolling(inventoryPoll).Should(Succeed())

	// The address arrives: IPv4 InternalIP is preferred to IPv6 and DNS.
	inventoryUpdateMachine(g, pending, true, func(m *machinev1beta1.Machine) {
		m.Status.Addresses = []corev1.NodeAddress{
			{Type: corev1.NodeInternalDNS, Address: "pending.inventory.test"},
			{Type: corev1.NodeExternalIP, Address: "203.0.113.7"},
			inventoryInternalIP("fd00:78::12"),
			inventoryInternalIP("10.78.1.12"),
		}
	})
	pendingName := inventory.MachineInstanceName(ns, pending.Name)
	g.Eventually(func(g Gomega) {
		wi, err := inventoryInstance(pendingName)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(wi.Spec.Address).To(Equal("10.78.1.12"))
		g.Expect(wi.Annotations).To(HaveKeyWithValue(wmcov1.AnnotationMachine, ns+"/pending"))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())

	// A new address is followed; status set by others is left alone.
	wi, err := inventoryInstance(pendingName)
	g.Expect(err).NotTo(HaveOccurred())
	wi.Status.Message = "set by the test"
	g.Expect(ctrltest.Client.Status().Update(t.Context(), wi)).To(Succeed())
	inventoryUpdateMachine(g, pending, true, func(m *machinev1beta1.Machine) {
		m.Status.Addresses = []corev1.NodeAddress{inventoryInternalIP("10.78.1.22")}
	})
	g.Eventually(func(g Gomega) {
		wi, err := inventoryInstance(pendingName)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(wi.Spec.Address).To(Equal("10.78.1.22"))
		g.Expect(wi.Status.Message).To(Equal("set by the test"))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())

	// Ignored, the witness loses its instance; no longer ignored, it gets
	// it back; no longer Windows, it loses it again.
	inventoryUpdateMachine(g, witness, false, func(m *machinev1beta1.Machine) { m.Labels[wmcov1.MachineIgnoreLabel] = "true" })
	g.Eventually(inventoryGone(witnessName)).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	inventoryUpdateMachine(g, witness, false, func(m *machinev1beta1.Machine) { delete(m.Labels, wmcov1.MachineIgnoreLabel) })
	g.Eventually(func() error {
		_, err := inventoryInstance(witnessName)
		return err
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	inventoryUpdateMachine(g, witness, false, func(m *machinev1beta1.Machine) { m.Labels[wmcov1.MachineOSIDLabel] = "Linux" })
	g.Eventually(inventoryGone(witnessName)).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())

	// An instance deleted by hand is put back.
	g.Expect(ctrltest.Client.Delete(t.Context(), &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: pendingName}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		wi, err := inventoryInstance(pendingName)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(wi.Spec.Address).To(Equal("10.78.1.22"))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())

	// The Machine is deleted (no machine-api finalizer here): so is its
	// instance.
	g.Expect(ctrltest.Client.Delete(t.Context(), pending)).To(Succeed())
	g.Eventually(inventoryGone(pendingName)).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
}

func TestMachineOrphanInstancesAreDeletedOnStart(t *testing.T) {
	g := NewWithT(t)
	ns := inventoryNamespace(t)

	orphanName := inventory.MachineInstanceName(ns, "gone")
	userName := inventory.MachineInstanceName(ns, "user")
	inventoryDeleteInstancesAtEnd(t, orphanName, userName)
	// Left by a Machine deleted while the operator was down.
	orphan := &wmcov1.WindowsInstance{
		ObjectMeta: metav1.ObjectMeta{
			Name:        orphanName,
			Labels:      map[string]string{wmcov1.LabelSource: wmcov1.SourceMachine},
			Annotations: map[string]string{wmcov1.AnnotationMachine: ns + "/gone"},
		},
		Spec: wmcov1.WindowsInstanceSpec{Address: "10.78.2.1", Username: "Administrator"},
	}
	// Created by a user under the name a Machine would get: not ours.
	user := &wmcov1.WindowsInstance{
		ObjectMeta: metav1.ObjectMeta{
			Name:        userName,
			Annotations: map[string]string{wmcov1.AnnotationMachine: ns + "/user"},
		},
		Spec: wmcov1.WindowsInstanceSpec{Address: "10.78.2.2", Username: "alice"},
	}
	g.Expect(ctrltest.Client.Create(t.Context(), orphan)).To(Succeed())
	g.Expect(ctrltest.Client.Create(t.Context(), user)).To(Succeed())

	inventoryStartMachineController(t)
	g.Eventually(inventoryGone(orphanName)).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())

	// A Windows Machine under that user's name does not take the instance
	// over; one whose address another instance has gets no instance.
	inventoryMachine(t, ns, "user", inventoryWindowsLabels(), inventoryInternalIP("10.78.2.3"))
	taken := inventoryMachine(t, ns, "taken", inventoryWindowsLabels(), inventoryInternalIP("10.78.2.2"))
	witness := inventoryMachine(t, ns, "witness", inventoryWindowsLabels(), inventoryInternalIP("10.78.2.4"))
	g.Eventually(func() error {
		_, err := inventoryInstance(inventory.MachineInstanceName(ns, witness.Name))
		return err
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	got, err := inventoryInstance(userName)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got.ResourceVersion).To(Equal(user.ResourceVersion))
	_, err = inventoryInstance(inventory.MachineInstanceName(ns, taken.Name))
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "WindowsInstance of Machine %s: %v", taken.Name, err)
}

// A Machine whose only internal addresses are ones the operator never
// connects to (the acceptance addresses) gets no WindowsInstance; beside a
// usable address they are passed over; given one later, it gets its
// instance.
func TestMachineWithOnlyRefusedAddressesGetsNoInstance(t *testing.T) {
	g := NewWithT(t)
	ns := inventoryNamespace(t)
	inventoryStartMachineController(t)

	refused := []corev1.NodeAddress{
		inventoryInternalIP("169.254.169.254"), inventoryInternalIP("fe80::1"), inventoryInternalIP("224.0.0.1"),
		inventoryInternalIP("0.0.0.0"), inventoryInternalIP("255.255.255.255"),
	}
	metadata := inventoryMachine(t, ns, "metadata", inventoryWindowsLabels(), refused...)
	mixed := inventoryMachine(t, ns, "mixed", inventoryWindowsLabels(), append(refused, inventoryInternalIP("fd00:78::3"))...)
	// Created last: once its instance exists, the Machines before it have
	// been seen.
	witness := inventoryMachine(t, ns, "witness", inventoryWindowsLabels(), inventoryInternalIP("10.78.3.9"))
	g.Eventually(func(g Gomega) {
		_, err := inventoryInstance(inventory.MachineInstanceName(ns, witness.Name))
		g.Expect(err).NotTo(HaveOccurred())
		wi, err := inventoryInstance(inventory.MachineInstanceName(ns, mixed.Name))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(wi.Spec.Address).To(Equal("fd00:78::3"))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	metadataName := inventory.MachineInstanceName(ns, metadata.Name)
	_, err := inventoryInstance(metadataName)
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "WindowsInstance of Machine %s: %v", metadata.Name, err)

	inventoryUpdateMachine(g, metadata, true, func(m *machinev1beta1.Machine) {
		m.Status.Addresses = append(m.Status.Addresses, inventoryInternalIP("10.78.3.1"))
	})
	g.Eventually(func(g Gomega) {
		wi, err := inventoryInstance(metadataName)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(wi.Spec.Address).To(Equal("10.78.3.1"))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
}

func TestMachineReconcilerSetupChecksItsFields(t *testing.T) {
	ctrltest.StartManager(t, func(mgr ctrl.Manager) error {
		g := NewWithT(t)
		g.Expect((&inventory.MachineReconciler{}).SetupWithManager(mgr)).NotTo(Succeed())
		g.Expect((&inventory.MachineReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr)).To(MatchError(ContainSubstring("Recorder")))
		rec := mgr.GetEventRecorder("wmco-machine-controller")
		g.Expect((&inventory.MachineReconciler{Client: mgr.GetClient(), Recorder: rec, Port: 70000}).SetupWithManager(mgr)).NotTo(Succeed())
		g.Expect((&inventory.MachineReconciler{Client: mgr.GetClient(), Recorder: rec, AccessTimeout: -time.Second}).SetupWithManager(mgr)).NotTo(Succeed())
		return nil
	})
}

func TestMachineInstanceName(t *testing.T) {
	g := NewWithT(t)
	dnsSubdomain := regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

	g.Expect(inventory.MachineInstanceName("openshift-machine-api", "ci-ln-x-windows-worker-a-7x2kq")).
		To(Equal("machine-ci-ln-x-windows-worker-a-7x2kq"))

	other := inventory.MachineInstanceName("team-a", "win-1")
	g.Expect(other).To(HavePrefix("machine-win-1-"))
	g.Expect(other).NotTo(Equal(inventory.MachineInstanceName("team-b", "win-1")))
	g.Expect(other).NotTo(Equal(inventory.MachineInstanceName("openshift-machine-api", "win-1")))

	long := strings.Repeat("a", 40) + "-" + strings.Repeat("b", 40) + "." + strings.Repeat("c", 40)
	for _, ns := range []string{"openshift-machine-api", "team-a"} {
		for _, name := range []string{long, strings.Repeat("x", 54) + "-y", strings.Repeat("x", 53) + ".y"} {
			got := inventory.MachineInstanceName(ns, name)
			g.Expect(len(got)).To(BeNumerically("<=", 63), got)
			g.Expect(got).To(MatchRegexp(dnsSubdomain.String()), got)
			g.Expect(got).To(Equal(inventory.MachineInstanceName(ns, name)))
		}
	}
	g.Expect(inventory.MachineInstanceName("team-a", long)).NotTo(Equal(inventory.MachineInstanceName("team-a", long+"d")))
}
