package inventory_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	configv1 "github.com/openshift/api/config/v1"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/inventory"
	"github.com/openwmco/wmco/test/ctrltest"
)

// inventoryStartMachineControllerOn runs the Machine controller for a
// cluster on platform p, with the given access timeout (0: the default).
func inventoryStartMachineControllerOn(t *testing.T, p configv1.PlatformType, access time.Duration) {
	t.Helper()
	ctrltest.StartManager(t, func(mgr ctrl.Manager) error {
		return (&inventory.MachineReconciler{
			Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("wmco-machine-controller"),
			Platform: p, AccessTimeout: access,
		}).SetupWithManager(mgr)
	})
}

// inventoryMachineEvents lists the Events of reason on Machine name.
func inventoryMachineEvents(g Gomega, namespace, name, reason string) []corev1.Event {
	list, err := ctrltest.Clientset.CoreV1().Events(namespace).List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.kind": "Machine", "involvedObject.name": name, "reason": reason}.String(),
	})
	g.Expect(err).NotTo(HaveOccurred())
	return list.Items
}

func inventoryGetMachine(g Gomega, m *machinev1beta1.Machine) *machinev1beta1.Machine {
	got := &machinev1beta1.Machine{}
	g.Expect(ctrltest.Client.Get(context.Background(), client.ObjectKeyFromObject(m), got)).To(Succeed())
	return got
}

// inventorySetInstanceStatus sets conds on instance name's status, and
// what change sets, as the instance controller would.
func inventorySetInstanceStatus(g *WithT, name string, change func(*wmcov1.WindowsInstanceStatus), conds ...metav1.Condition) {
	g.Eventually(func(g Gomega) {
		wi, err := inventoryInstance(name)
		g.Expect(err).NotTo(HaveOccurred())
		for _, c := range conds {
			meta.SetStatusCondition(&wi.Status.Conditions, c)
		}
		change(&wi.Status)
		g.Expect(ctrltest.Client.Status().Update(context.Background(), wi)).To(Succeed())
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
}

func inventoryMachineCondition(m *machinev1beta1.Machine, t machinev1beta1.ConditionType) *machinev1beta1.Condition {
	for i := range m.Status.Conditions {
		if m.Status.Conditions[i].Type == t {
			return &m.Status.Conditions[i]
		}
	}
	return nil
}

// inventoryDeletableMachine creates the Windows Machine name on AWS at
// ip, with the Machine API's own finalizer (which it removes after the
// VM is gone; the test's cleanup removes it), and once its instance
// exists puts on the instance a finalizer of the test's (returned) that
// stands in for the instance controller's cleanup.
func inventoryDeletableMachine(t *testing.T, ns, name, ip string) (m *machinev1beta1.Machine, instance, cleanup string) {
	t.Helper()
	g := NewWithT(t)
	ctx := t.Context()
	m = &machinev1beta1.Machine{ObjectMeta: metav1.ObjectMeta{
		Namespace: ns, Name: name, Labels: inventoryWindowsLabels(),
		Finalizers: []string{"machine.machine.openshift.io"},
	}}
	g.Expect(ctrltest.Client.Create(ctx, m)).To(Succeed())
	t.Cleanup(func() {
		_ = ctrltest.Client.Patch(context.Background(), m, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))
	})
	m.Status.Addresses = []corev1.NodeAddress{inventoryInternalIP(ip),
		{Type: corev1.NodeInternalDNS, Address: "ip-" + strings.ReplaceAll(ip, ".", "-") + ".ec2.internal"}}
	g.Expect(ctrltest.Client.Status().Update(ctx, m)).To(Succeed())
	instance = inventory.MachineInstanceName(ns, m.Name)
	inventoryDeleteInstancesAtEnd(t, instance)
	cleanup = "test.wmco.io/cleanup"
	g.Eventually(func(g Gomega) {
		wi, err := inventoryInstance(instance)
		g.Expect(err).NotTo(HaveOccurred())
		controllerutil.AddFinalizer(wi, cleanup)
		g.Expect(ctrltest.Client.Update(ctx, wi)).To(Succeed())
		g.Expect(inventoryGetMachine(g, m).Spec.LifecycleHooks.PreDrain).To(ContainElement(inventory.MachineDeconfigureHook))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	return m, instance, cleanup
}

// inventoryFinishCleanup removes the test's cleanup finalizer from the
// instance of Machine m, as the instance controller would once done, and
// waits for the instance to go and the Machine's hook to come off, with
// one WindowsHostDeconfigured Event.
func inventoryFinishCleanup(g *WithT, m *machinev1beta1.Machine, instance, cleanup string) {
	wi, err := inventoryInstance(instance)
	g.Expect(err).NotTo(HaveOccurred())
	controllerutil.RemoveFinalizer(wi, cleanup)
	g.Expect(ctrltest.Client.Update(context.Background(), wi)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(inventoryGone(instance)()).To(Succeed())
		g.Expect(inventoryGetMachine(g, m).Spec.LifecycleHooks.PreDrain).NotTo(ContainElement(inventory.MachineDeconfigureHook))
		g.Expect(inventoryMachineEvents(g, m.Namespace, m.Name, inventory.EventMachineDeconfigured)).To(HaveLen(1))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
}

// Each platform maps a Machine to its instance by its own rule: the user,
// the Node name and where it comes from, the computer name to set and the
// kubelet's cloud provider. Every managed Machine carries the deconfigure
// hook.
func TestMachinePlatformShapesTheInstance(t *testing.T) {
	cases := []struct {
		platform configv1.PlatformType
		want     func(machine string) wmcov1.WindowsInstanceSpec
	}{
		{configv1.AWSPlatformType, func(string) wmcov1.WindowsInstanceSpec {
			return wmcov1.WindowsInstanceSpec{Username: "Administrator", NodeName: "ip-10-79-1-5.ec2.internal", CloudProvider: "external"}
		}},
		{configv1.AzurePlatformType, func(m string) wmcov1.WindowsInstanceSpec {
			return wmcov1.WindowsInstanceSpec{Username: "capi", NodeName: m, CloudProvider: "external"}
		}},
		{configv1.VSpherePlatformType, func(m string) wmcov1.WindowsInstanceSpec {
			return wmcov1.WindowsInstanceSpec{Username: "Administrator", NodeName: m, Hostname: m, CloudProvider: "external"}
		}},
		{configv1.NonePlatformType, func(string) wmcov1.WindowsInstanceSpec {
			return wmcov1.WindowsInstanceSpec{Username: "Administrator"}
		}},
		{"", func(string) wmcov1.WindowsInstanceSpec { return wmcov1.WindowsInstanceSpec{Username: "Administrator"} }},
	}
	for i, c := range cases {
		t.Run(string(c.platform), func(t *testing.T) {
			g := NewWithT(t)
			ns := inventoryNamespace(t)
			// An address of its own: the instance of the case before may
			// still be going.
			ip := fmt.Sprintf("10.79.1.%d", i+5)
			addrs := []corev1.NodeAddress{
				inventoryInternalIP(ip),
				{Type: corev1.NodeInternalDNS, Address: "IP-10-79-1-" + strconv.Itoa(i+5) + ".ec2.internal"},
				{Type: corev1.NodeHostName, Address: "EC2AMAZ-1234567"},
			}
			inventoryStartMachineControllerOn(t, c.platform, 0)
			m := inventoryMachine(t, ns, "win-a1b2c", inventoryWindowsLabels(), addrs...)
			want := c.want(m.Name)
			want.Address, want.Port = ip, wmcov1.DefaultSSHPort
			want.CredentialsSecretRef = wmcov1.SecretKeyReference{Name: wmcov1.DefaultCredentialsSecretName, Key: wmcov1.DefaultCredentialsSecretKey}
			g.Eventually(func(g Gomega) {
				wi, err := inventoryInstance(inventory.MachineInstanceName(ns, m.Name))
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(wi.Spec).To(Equal(want))
				g.Expect(inventoryGetMachine(g, m).Spec.LifecycleHooks.PreDrain).To(ContainElement(inventory.MachineDeconfigureHook))
				g.Expect(inventoryMachineEvents(g, ns, m.Name, inventory.EventMachineInstanceCreated)).To(HaveLen(1))
			}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
		})
	}
}

// On AWS the Node is named after the InternalDNS address: a Machine that
// has only its IP yet waits for it. On vSphere the Machine's name becomes
// the computer name, which Windows limits to 15 characters: a longer one
// never gets an instance, and the Machine says why.
func TestMachineNodeNameTheHostCannotHave(t *testing.T) {
	g := NewWithT(t)
	ns := inventoryNamespace(t)
	inventoryStartMachineControllerOn(t, configv1.VSpherePlatformType, 0)
	long := inventoryMachine(t, ns, "windows-worker-a-x7k2p", inventoryWindowsLabels(), inventoryInternalIP("10.79.2.5"))
	g.Eventually(func(g Gomega) {
		got := inventoryGetMachine(g, long)
		c := inventoryMachineCondition(got, inventory.MachineConditionAccessible)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(corev1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(inventory.EventMachineInvalidName))
		g.Expect(c.Message).To(ContainSubstring("at most 15 characters"))
		g.Expect(inventoryMachineEvents(g, ns, long.Name, inventory.EventMachineInvalidName)).To(HaveLen(1))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	_, err := inventoryInstance(inventory.MachineInstanceName(ns, long.Name))
	g.Expect(err).To(HaveOccurred(), "no instance for a name the host cannot have")
}

// Deleting a Machine (a MachineSet scaling down) deletes its instance,
// whose finalizer cleans the host; the deconfigure hook holds the Machine
// API off until the instance is gone, and only then is removed.
func TestMachineDeletionWaitsForTheHostToBeClean(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := inventoryNamespace(t)
	inventoryStartMachineControllerOn(t, configv1.AWSPlatformType, 0)
	m, name, cleanup := inventoryDeletableMachine(t, ns, "win-del", "10.79.3.5")

	g.Expect(ctrltest.Client.Delete(ctx, m)).To(Succeed())
	g.Eventually(func(g Gomega) {
		wi, err := inventoryInstance(name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(wi.DeletionTimestamp.IsZero()).To(BeFalse(), "the instance is being deleted")
		g.Expect(inventoryMachineEvents(g, ns, m.Name, inventory.EventMachineDeconfiguring)).To(HaveLen(1))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(inventoryGetMachine(g, m).Spec.LifecycleHooks.PreDrain).To(ContainElement(inventory.MachineDeconfigureHook))
	}).WithTimeout(2*time.Second).WithPolling(inventoryPoll).Should(Succeed(), "the hook holds while the host is cleaned")

	inventoryFinishCleanup(g, m, name, cleanup)
}

// A Machine being deleted whose host does not let the operator in holds
// nothing for ever: once the access timeout has passed since the host was
// last reachable, the operator marks the instance to give the host up
// (wmco.io/abandon-host), with one Warning Event on the Machine. A host
// that lets it in is never given up.
func TestMachineDeletionGivesUpAHostItCannotReach(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := inventoryNamespace(t)
	const bound = 2 * time.Second
	inventoryStartMachineControllerOn(t, configv1.AWSPlatformType, bound)
	m, name, cleanup := inventoryDeletableMachine(t, ns, "win-dead", "10.79.3.6")
	inventorySetInstanceStatus(g, name, func(*wmcov1.WindowsInstanceStatus) {},
		metav1.Condition{Type: wmcov1.ConditionReachable, Status: metav1.ConditionTrue, Reason: "Connected", Message: "connected over SSH"})

	abandoned := func(g Gomega) string {
		wi, err := inventoryInstance(name)
		g.Expect(err).NotTo(HaveOccurred())
		return wi.Annotations[wmcov1.AnnotationAbandonHost]
	}
	g.Expect(ctrltest.Client.Delete(ctx, m)).To(Succeed())
	g.Eventually(func(g Gomega) {
		wi, err := inventoryInstance(name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(wi.DeletionTimestamp.IsZero()).To(BeFalse(), "the instance is being deleted")
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	g.Consistently(abandoned).WithTimeout(2*bound).WithPolling(inventoryPoll).Should(BeEmpty(), "a host the operator reaches is cleaned")

	// The VM dies.
	lost := time.Now()
	inventorySetInstanceStatus(g, name, func(*wmcov1.WindowsInstanceStatus) {},
		metav1.Condition{Type: wmcov1.ConditionReachable, Status: metav1.ConditionFalse, Reason: "Unreachable", Message: "dial tcp 10.79.3.6:22: i/o timeout"})
	g.Eventually(abandoned).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(
		ContainSubstring("the Machine " + ns + "/win-dead is being deleted and the host has not let the operator in since"))
	g.Expect(time.Since(lost)).To(BeNumerically(">=", bound), "not before the access timeout")
	g.Eventually(func(g Gomega) {
		events := inventoryMachineEvents(g, ns, m.Name, inventory.EventMachineHostAbandoned)
		g.Expect(events).To(HaveLen(1))
		g.Expect(events[0].Type).To(Equal(corev1.EventTypeWarning))
		g.Expect(events[0].Message).To(And(ContainSubstring("has not let the operator in for 2s (Unreachable)"), ContainSubstring("without cleaning the host")))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())

	// The instance controller then lets the instance go; the hook follows.
	inventoryFinishCleanup(g, m, name, cleanup)
	g.Expect(inventoryMachineEvents(g, ns, m.Name, inventory.EventMachineHostAbandoned)).To(HaveLen(1), "one Warning")
}

// A host that never lets the operator in (a VM that did not authorise the
// key) turns the Machine's WindowsHostAccessible False once the bound has
// passed, with one Warning Event; a host that does, and whose Node is
// Ready, turns both conditions True.
func TestMachineReportsItsHostsAccess(t *testing.T) {
	g := NewWithT(t)
	ns := inventoryNamespace(t)
	inventoryStartMachineControllerOn(t, configv1.NonePlatformType, 2*time.Second)
	m := inventoryMachine(t, ns, "win-locked", inventoryWindowsLabels(), inventoryInternalIP("10.79.4.5"))
	name := inventory.MachineInstanceName(ns, m.Name)
	setStatus := func(conds ...metav1.Condition) {
		inventorySetInstanceStatus(g, name, func(st *wmcov1.WindowsInstanceStatus) { st.NodeName = "win-locked" }, conds...)
	}
	setStatus(metav1.Condition{Type: wmcov1.ConditionReachable, Status: metav1.ConditionFalse, Reason: "AuthenticationFailed",
		Message: "the host refused the key for user Administrator"})

	g.Eventually(func(g Gomega) {
		c := inventoryMachineCondition(inventoryGetMachine(g, m), inventory.MachineConditionAccessible)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(corev1.ConditionFalse))
		g.Expect(c.Reason).To(Equal("AuthenticationFailed"))
		g.Expect(c.Severity).To(Equal(machinev1beta1.ConditionSeverityWarning))
		g.Expect(c.Message).To(And(ContainSubstring("the host refused the key"), ContainSubstring("windows-user-data")))
		g.Expect(inventoryMachineEvents(g, ns, m.Name, inventory.EventMachineNotAccessible)).To(HaveLen(1))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())

	setStatus(
		metav1.Condition{Type: wmcov1.ConditionReachable, Status: metav1.ConditionTrue, Reason: "Connected", Message: "connected"},
		metav1.Condition{Type: wmcov1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready", Message: "ready"})
	g.Eventually(func(g Gomega) {
		got := inventoryGetMachine(g, m)
		for _, t := range []machinev1beta1.ConditionType{inventory.MachineConditionAccessible, inventory.MachineConditionNodeReady} {
			c := inventoryMachineCondition(got, t)
			g.Expect(c).NotTo(BeNil(), string(t))
			g.Expect(c.Status).To(Equal(corev1.ConditionTrue), string(t))
		}
		g.Expect(inventoryMachineEvents(g, ns, m.Name, inventory.EventMachineNodeReady)).To(HaveLen(1))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	g.Expect(inventoryMachineEvents(g, ns, m.Name, inventory.EventMachineNotAccessible)).To(HaveLen(1), "one Warning, not one per reconcile")
}

// A host that let the operator in and then stops answering (a reboot, a
// VM gone) keeps WindowsHostAccessible as it was for the bound, counted
// from when it stopped, not from the instance's creation; then it turns
// False with one Warning Event that says since when, without the
// first-boot advice.
func TestMachineAccessCountsFromTheLastLogin(t *testing.T) {
	g := NewWithT(t)
	ns := inventoryNamespace(t)
	const bound = 6 * time.Second
	inventoryStartMachineControllerOn(t, configv1.NonePlatformType, bound)
	m := inventoryMachine(t, ns, "win-reboots", inventoryWindowsLabels(), inventoryInternalIP("10.79.4.6"))
	name := inventory.MachineInstanceName(ns, m.Name)
	setStatus := func(conds ...metav1.Condition) {
		inventorySetInstanceStatus(g, name, func(st *wmcov1.WindowsInstanceStatus) {
			// The fingerprint is what a first login records.
			st.NodeName, st.AuthorizedKeyFingerprint = "win-reboots", "SHA256:test"
		}, conds...)
	}
	condition := func(g Gomega, t machinev1beta1.ConditionType) *machinev1beta1.Condition {
		c := inventoryMachineCondition(inventoryGetMachine(g, m), t)
		g.Expect(c).NotTo(BeNil(), string(t))
		return c
	}
	setStatus(
		metav1.Condition{Type: wmcov1.ConditionReachable, Status: metav1.ConditionTrue, Reason: "Connected", Message: "connected"},
		metav1.Condition{Type: wmcov1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready", Message: "ready"})
	g.Eventually(func(g Gomega) {
		g.Expect(condition(g, inventory.MachineConditionAccessible).Status).To(Equal(corev1.ConditionTrue))
		g.Expect(condition(g, inventory.MachineConditionNodeReady).Status).To(Equal(corev1.ConditionTrue))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())

	// The host goes away: the Node's readiness follows at once, the
	// access condition stays True (before, it was dropped by the status
	// patch, or turned False at once for an instance older than the bound).
	setStatus(
		metav1.Condition{Type: wmcov1.ConditionReachable, Status: metav1.ConditionFalse, Reason: "Unreachable", Message: "connection refused"},
		metav1.Condition{Type: wmcov1.ConditionReady, Status: metav1.ConditionFalse, Reason: "NodeNotReady", Message: "the Node is not Ready"})
	g.Eventually(func(g Gomega) {
		g.Expect(condition(g, inventory.MachineConditionNodeReady).Status).To(Equal(corev1.ConditionFalse))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	g.Expect(condition(g, inventory.MachineConditionAccessible).Status).To(Equal(corev1.ConditionTrue), "within the bound of the last login")
	g.Expect(inventoryMachineEvents(g, ns, m.Name, inventory.EventMachineNotAccessible)).To(BeEmpty())

	g.Eventually(func(g Gomega) {
		c := condition(g, inventory.MachineConditionAccessible)
		g.Expect(c.Status).To(Equal(corev1.ConditionFalse))
		g.Expect(c.Reason).To(Equal("Unreachable"))
		g.Expect(c.Message).To(And(ContainSubstring("for 6s, since"), ContainSubstring("connection refused")))
		g.Expect(c.Message).NotTo(ContainSubstring("windows-user-data"))
		g.Expect(inventoryMachineEvents(g, ns, m.Name, inventory.EventMachineNotAccessible)).To(HaveLen(1))
	}).WithTimeout(inventoryTimeout + bound).WithPolling(inventoryPoll).Should(Succeed())
}
