package instance_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/pkg/platform"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// expectPreflightReason waits for the instance's PreflightPassed condition
// to have reason and returns its message.
func expectPreflightReason(t *testing.T, name, reason string) string {
	t.Helper()
	var msg string
	NewWithT(t).Eventually(func(g Gomega) {
		wi := &wmcov1.WindowsInstance{}
		g.Expect(ctrltest.Client.Get(t.Context(), client.ObjectKey{Name: name}, wi)).To(Succeed())
		c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionPreflightPassed)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(reason))
		msg = c.Message
	}).WithTimeout(60 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	return msg
}

// An instance with spec.hostname renames its host (WIN-T<n>) with one
// reboot before it joins, as the Node named after the new name; changing
// spec.hostname later deconfigures the host, renames it with one more
// reboot, and joins it again under the new name. The simulated host
// reboots as Windows does, 5 s after `shutdown /r /t 5` returned, and
// answers meanwhile with its old name: the operator waits for the new
// boot (the Node's deletion wakes the instance within those 5 s).
func TestHostnameIsSetWithOneReboot(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	h := ctrltest.StartHosts(t, 1, simagent.Options{})[0]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{})
	g.Expect(h.Host.Facts().Hostname).To(Equal(strings.ToUpper(h.Name)))

	wi := ctrltest.InstanceFor(h)
	wi.Spec.Hostname = "vm-abc12"
	g.Expect(ctrltest.Client.Create(ctx, wi)).To(Succeed())
	g.Expect(expectPreflightReason(t, h.Name, instance.ReasonRenamingHost)).To(Equal("setting the computer name to vm-abc12; rebooting"))
	node := ctrltest.WaitReady(t, h.Name, 2*time.Minute)

	g.Expect(node.Name).To(Equal("vm-abc12"))
	g.Expect(h.Host.Stats().Boots).To(BeEquivalentTo(1), "exactly one reboot")
	g.Expect(strings.EqualFold(h.Host.Facts().Hostname, "vm-abc12")).To(BeTrue(), h.Host.Facts().Hostname)
	g.Expect(h.Host.PendingHostname()).To(BeEmpty())
	got := &wmcov1.WindowsInstance{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, got)).To(Succeed())
	g.Expect(got.Status.NodeName).To(Equal("vm-abc12"))
	g.Expect(got.Status.Host.Hostname).To(Equal("vm-abc12"))
	g.Expect(got.Status.Reboot).To(BeNil(), "the reboot was seen to happen")
	g.Expect(countEvents(g, h.Name, instance.ReasonRenamingHost)).To(Equal(1))

	// A new name for the joined host: the old Node goes, the host is
	// renamed with one more reboot and joins again.
	g.Expect(ctrltest.UpdateInstance(ctx, h.Name, func(wi *wmcov1.WindowsInstance) { wi.Spec.Hostname = "vm-def34" })).To(Succeed())
	g.Eventually(func(g Gomega) {
		wi := &wmcov1.WindowsInstance{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, wi)).To(Succeed())
		g.Expect(wi.Status.NodeName).To(Equal("vm-def34"))
		g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseReady))
		g.Expect(wi.Status.ObservedGeneration).To(Equal(wi.Generation))
	}).WithTimeout(2 * time.Minute).WithPolling(250 * time.Millisecond).Should(Succeed())
	err := ctrltest.Client.Get(ctx, client.ObjectKey{Name: "vm-abc12"}, &corev1.Node{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the Node of the old name is deleted")
	g.Expect(h.Host.Stats().Boots).To(BeEquivalentTo(2), "one reboot per name")
	g.Expect(h.Host.Facts().Hostname).To(Equal("vm-def34"))
	g.Consistently(func() int64 { return h.Host.Stats().Boots }).WithTimeout(3*time.Second).Should(BeEquivalentTo(2), "no reboot loop")

	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
	ctrltest.ExpectHostClean(g, h)
}

// A host that needs the Containers feature and a new computer name gets
// both from a single reboot.
func TestHostnameAndFeaturesShareOneReboot(t *testing.T) {
	g := NewWithT(t)
	h := ctrltest.StartHosts(t, 1, simagent.Options{ContainersFeatureDisabled: true})[0]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{})
	wi := ctrltest.InstanceFor(h)
	wi.Spec.Hostname = "vm-feat1"
	g.Expect(ctrltest.Client.Create(t.Context(), wi)).To(Succeed())
	g.Expect(expectPreflightReason(t, h.Name, instance.ReasonRebooting)).To(
		Equal("rebooting to enable Containers and setting the computer name to vm-feat1; rebooting"))
	node := ctrltest.WaitReady(t, h.Name, 2*time.Minute)
	g.Expect(node.Name).To(Equal("vm-feat1"))
	g.Expect(h.Host.Stats().Boots).To(BeEquivalentTo(1), "one reboot for both")
	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
}

// With spec.cloudProvider external the kubelet runs with
// --cloud-provider=external and registers the Node with the uninitialized
// taint. The instance is Ready without waiting for a cloud controller
// manager: Ready means the host is configured and its Node Ready; the
// taint keeps workloads off until the CCM has initialised the Node. When
// the CCM (played by the test) removes the taint and sets the addresses,
// neither the kubelet's status updates nor the operator bring the taint
// back or the kubelet's addresses.
func TestCloudProviderExternal(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	h := ctrltest.StartHosts(t, 1, simagent.Options{})[0]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{})
	wi := ctrltest.InstanceFor(h)
	wi.Spec.CloudProvider = platform.External
	g.Expect(ctrltest.Client.Create(ctx, wi)).To(Succeed())
	node := ctrltest.WaitReady(t, h.Name, 90*time.Second)

	uninitialized := corev1.Taint{Key: platform.UninitializedTaint, Value: "true", Effect: corev1.TaintEffectNoSchedule}
	g.Expect(node.Spec.Taints).To(ContainElement(uninitialized))
	g.Expect(node.Spec.Taints).To(ContainElement(corev1.Taint{Key: "os", Value: "Windows", Effect: corev1.TaintEffectNoSchedule}))
	g.Expect(node.Annotations).To(HaveKeyWithValue("alpha.kubernetes.io/provided-node-ip", h.Host.Facts().IPAddresses[0].String()))
	kubelet, err := h.Services.Query(ctx, "kubelet")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.Join(kubelet.Config.Args, " ")).To(ContainSubstring("--cloud-provider=external"))

	// The cloud controller manager initialises the Node.
	ccmAddrs := []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: h.Host.Facts().IPAddresses[0].String()},
		{Type: corev1.NodeInternalDNS, Address: "ip-192-0-2-1.ec2.internal"},
	}
	g.Eventually(func() error {
		n := &corev1.Node{}
		if err := ctrltest.Client.Get(ctx, client.ObjectKey{Name: node.Name}, n); err != nil {
			return err
		}
		var kept []corev1.Taint
		for _, t := range n.Spec.Taints {
			if t.Key != platform.UninitializedTaint {
				kept = append(kept, t)
			}
		}
		n.Spec.Taints = kept
		return ctrltest.Client.Update(ctx, n)
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Eventually(func() error {
		n := &corev1.Node{}
		if err := ctrltest.Client.Get(ctx, client.ObjectKey{Name: node.Name}, n); err != nil {
			return err
		}
		n.Status.Addresses = ccmAddrs
		return ctrltest.Client.Status().Update(ctx, n)
	}).WithTimeout(10 * time.Second).Should(Succeed())
	// Status updates of the kubelet after the CCM's changes leave the
	// Node as the CCM left it; so does the kubelet started again by a
	// reboot, which adopts the existing Node.
	expectInitialised := func(after time.Time) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			n := &corev1.Node{}
			g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: node.Name}, n)).To(Succeed())
			var ready *corev1.NodeCondition
			for i := range n.Status.Conditions {
				if n.Status.Conditions[i].Type == corev1.NodeReady {
					ready = &n.Status.Conditions[i]
				}
			}
			g.Expect(ready).NotTo(BeNil())
			// Heartbeats have a resolution of a second.
			g.Expect(ready.LastHeartbeatTime.Time).To(BeTemporally(">", after.Add(3*time.Second)), "a status update after the CCM's")
		}).WithTimeout(30 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
		n := &corev1.Node{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: node.Name}, n)).To(Succeed())
		g.Expect(n.Spec.Taints).NotTo(ContainElement(HaveField("Key", platform.UninitializedTaint)))
		g.Expect(n.Spec.Taints).To(ContainElement(corev1.Taint{Key: "os", Value: "Windows", Effect: corev1.TaintEffectNoSchedule}))
		g.Expect(n.Status.Addresses).To(Equal(ccmAddrs), "addresses set by the CCM are the CCM's")
	}
	expectInitialised(time.Now())
	restarted := time.Now()
	g.Expect(h.Host.Reboot(ctx, 100*time.Millisecond)).To(Succeed())
	g.Expect(h.Host.WaitUp(ctx)).To(Succeed())
	expectInitialised(restarted)
	ctrltest.WaitReady(t, h.Name, 10*time.Second)

	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
}
