package controllers_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	configv1 "github.com/openshift/api/config/v1"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	"golang.org/x/crypto/ssh"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/csrapproval"
	"github.com/openwmco/wmco/controllers/inventory"
	"github.com/openwmco/wmco/pkg/platform"
	"github.com/openwmco/wmco/pkg/userdata"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/machinesim"
	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// msTimeout bounds a join or a scale-down of a few simulated VMs.
const msTimeout = 3 * time.Minute

// msStartCloud runs a simulated cloud of platform p whose Machines live in
// openshift-machine-api, where the operator keeps windows-user-data.
func msStartCloud(t *testing.T, p configv1.PlatformType) *machinesim.Cloud {
	t.Helper()
	cloud, err := machinesim.Start(t.Context(), machinesim.Options{
		Config: ctrltest.Cluster.Config, Platform: p, Namespace: userdata.MachineAPINamespace,
		Host: simagent.Options{AgentRunInterval: time.Second, KubeletLeaseDuration: 4 * time.Second, KubeletStatusInterval: 2 * time.Second},
		Log:  ctrltest.LogWriter{T: t},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cloud.Stop)
	return cloud
}

// msWaitUserData waits until the operator has written the userData of
// platform p for the fixture's key: a cluster has one platform, but the
// tests change it, and a VM booted from another platform's script would
// (rightly) refuse it.
func msWaitUserData(t *testing.T, p configv1.PlatformType) {
	t.Helper()
	prof, _ := platform.Lookup(p)
	want, err := userdata.Render(prof, ctrltest.Signer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func(g Gomega) {
		s := &corev1.Secret{}
		g.Expect(ctrltest.Client.Get(context.Background(), client.ObjectKey{Namespace: userdata.MachineAPINamespace, Name: userdata.SecretName}, s)).To(Succeed())
		g.Expect(s.Data[userdata.SecretKey]).To(Equal(want))
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

// msMachineSet creates a Windows MachineSet of zero replicas whose VMs get
// the userData of Secret secret; it is deleted when the test ends.
func msMachineSet(t *testing.T, name, secret string) *machinev1beta1.MachineSet {
	t.Helper()
	ms := machinesim.WindowsMachineSet(userdata.MachineAPINamespace, name, secret)
	if err := ctrltest.Client.Create(t.Context(), ms); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), ms) })
	return ms
}

// msScale sets the MachineSet's replicas.
func msScale(g Gomega, ms *machinev1beta1.MachineSet, n int32) {
	patch := []byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, n))
	g.Expect(ctrltest.Client.Patch(context.Background(), ms, client.RawPatch("application/merge-patch+json", patch))).To(Succeed())
}

// msMachines lists the MachineSet's Machines.
func msMachines(g Gomega, ms *machinev1beta1.MachineSet) []machinev1beta1.Machine {
	var list machinev1beta1.MachineList
	g.Expect(ctrltest.Client.List(context.Background(), &list, client.InNamespace(ms.Namespace),
		client.MatchingLabels(ms.Spec.Selector.MatchLabels))).To(Succeed())
	return list.Items
}

// msWantNodeName is the Node name the platform's rule gives the Machine.
func msWantNodeName(cloud *machinesim.Cloud, m *machinev1beta1.Machine) string {
	switch cloud.Platform().NodeName {
	case platform.NodeNameFromInternalDNS:
		return machinesim.MachineAddress(m, corev1.NodeInternalDNS)
	case platform.NodeNameFromMachine:
		return m.Name
	}
	return strings.ToLower(cloud.Host(m.Name).Facts().Hostname)
}

// msWaitReady waits until the MachineSet has n Machines, each with a Ready
// instance and a Ready, tainted, initialised Node named by the platform's
// rule, and returns the Machines.
func msWaitReady(t *testing.T, cloud *machinesim.Cloud, ms *machinev1beta1.MachineSet, n int) []machinev1beta1.Machine {
	t.Helper()
	g := NewWithT(t)
	var machines []machinev1beta1.Machine
	g.Eventually(func(g Gomega) {
		machines = msMachines(g, ms)
		g.Expect(machines).To(HaveLen(n))
		for i := range machines {
			m := &machines[i]
			wi := &wmcov1.WindowsInstance{}
			g.Expect(ctrltest.Client.Get(context.Background(), client.ObjectKey{Name: inventory.MachineInstanceName(m.Namespace, m.Name)}, wi)).To(Succeed())
			g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseReady), "%s: %s", wi.Name, wi.Status.Message)
			want := msWantNodeName(cloud, m)
			g.Expect(wi.Status.NodeName).To(Equal(want))
			node := &corev1.Node{}
			g.Expect(ctrltest.Client.Get(context.Background(), client.ObjectKey{Name: want}, node)).To(Succeed())
			g.Expect(node.Spec.Taints).To(ContainElement(HaveField("Key", "os")), "the operator's taint")
			g.Expect(node.Spec.Taints).NotTo(ContainElement(HaveField("Key", platform.UninitializedTaint)), "initialised by the cloud controller manager")
			if cloud.Platform().KubeletCloudProvider == platform.External {
				g.Expect(node.Spec.ProviderID).To(Equal(ptr.Deref(m.Spec.ProviderID, "")))
			}
			if cloud.Platform().SetHostname {
				g.Expect(strings.ToLower(cloud.Host(m.Name).Facts().Hostname)).To(Equal(m.Name), "the VM's computer name")
			}
		}
	}).WithTimeout(msTimeout).WithPolling(500 * time.Millisecond).Should(Succeed())
	return machines
}

// msExpectCSRsApproved checks that the Node's kubelet client and serving
// CSRs were approved by the operator's strict approver.
func msExpectCSRsApproved(g Gomega, nodeName string) {
	var list certificatesv1.CertificateSigningRequestList
	g.Expect(ctrltest.Client.List(context.Background(), &list)).To(Succeed())
	signers := map[string]bool{}
	for _, csr := range list.Items {
		names, err := ctrltest.CSRNamesNode(&csr, nodeName)
		g.Expect(err).NotTo(HaveOccurred())
		if !names {
			continue
		}
		for _, c := range csr.Status.Conditions {
			if c.Type == certificatesv1.CertificateApproved {
				g.Expect(c.Reason).To(Equal(csrapproval.CSRConditionReasonApproved), csr.Name)
				signers[csr.Spec.SignerName] = true
			}
		}
	}
	g.Expect(signers).To(HaveKey(certificatesv1.KubeAPIServerClientKubeletSignerName), "client CSR of %s", nodeName)
	g.Expect(signers).To(HaveKey(certificatesv1.KubeletServingSignerName), "serving CSR of %s", nodeName)
}

// msNodeDeletions records when Nodes are deleted.
type msNodeDeletions struct {
	mu sync.Mutex
	at map[string]time.Time
}

func msWatchNodeDeletions(t *testing.T) *msNodeDeletions {
	t.Helper()
	w, err := ctrltest.Clientset.CoreV1().Nodes().Watch(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := &msNodeDeletions{at: map[string]time.Time{}}
	go func() {
		for ev := range w.ResultChan() {
			if n, ok := ev.Object.(*corev1.Node); ok && ev.Type == watch.Deleted {
				d.mu.Lock()
				d.at[n.Name] = time.Now()
				d.mu.Unlock()
			}
		}
	}()
	t.Cleanup(w.Stop)
	return d
}

func (d *msNodeDeletions) when(name string) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	at, ok := d.at[name]
	return at, ok
}

// msExpectCleanedBeforeDestroyed checks, for a Machine scaled away, that
// its Node was deleted and its host cleaned before the VM was destroyed.
func msExpectCleanedBeforeDestroyed(g Gomega, cloud *machinesim.Cloud, nodes *msNodeDeletions, machine, nodeName string) {
	var destroyed time.Time
	for _, ev := range cloud.EventsOf(machine) {
		if ev.Kind == machinesim.EventHostDestroyed {
			destroyed = ev.Time
		}
		g.Expect(ev.Kind).NotTo(Equal(machinesim.EventNodeDeletedByCloud), "the operator deletes the Node, not the cloud")
	}
	g.Expect(destroyed.IsZero()).To(BeFalse(), "VM of %s destroyed", machine)
	deleted, ok := nodes.when(nodeName)
	g.Expect(ok).To(BeTrue(), "Node %s deleted", nodeName)
	g.Expect(deleted.Before(destroyed)).To(BeTrue(), "Node %s deleted at %s, VM destroyed at %s", nodeName, deleted, destroyed)
	snap, ok := cloud.Snapshot(machine)
	g.Expect(ok).To(BeTrue())
	g.Expect(snap.Leftovers()).To(BeEmpty(), "left on %s's VM", machine)
}

// On each platform a Windows MachineSet scaled 0 → 2 gives two Ready,
// tainted Nodes named by the platform's rule, joined through CSRs the
// strict approver approved; scaled to 0, each host is cleaned and its Node
// deleted before its VM is destroyed.
func TestMachineSetScalesOnEachPlatform(t *testing.T) {
	for _, p := range platform.Supported() {
		t.Run(string(p), func(t *testing.T) {
			g := NewWithT(t)
			nodes := msWatchNodeDeletions(t)
			cloud := msStartCloud(t, p)
			ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2, MachineSSHPort: int32(cloud.SSHPort()), MachinePlatform: p})
			msWaitUserData(t, p)
			ms := msMachineSet(t, "win-"+strings.ToLower(string(p)[:2]), userdata.SecretName)

			msScale(g, ms, 2)
			machines := msWaitReady(t, cloud, ms, 2)
			names := map[string]string{}
			for i := range machines {
				m := &machines[i]
				names[m.Name] = msWantNodeName(cloud, m)
				g.Eventually(func(g Gomega) { msExpectCSRsApproved(g, names[m.Name]) }).WithTimeout(30 * time.Second).Should(Succeed())
				got := &machinev1beta1.Machine{}
				g.Expect(ctrltest.Client.Get(t.Context(), client.ObjectKeyFromObject(m), got)).To(Succeed())
				g.Expect(got.Spec.LifecycleHooks.PreDrain).To(ContainElement(inventory.MachineDeconfigureHook))
				t.Logf("Machine %s → Node %s (%s)", m.Name, names[m.Name], p)
			}

			msScale(g, ms, 0)
			g.Eventually(func(g Gomega) { g.Expect(msMachines(g, ms)).To(BeEmpty()) }).WithTimeout(msTimeout).Should(Succeed())
			for machine, node := range names {
				msExpectCleanedBeforeDestroyed(g, cloud, nodes, machine, node)
				g.Expect(apierrors.IsNotFound(ctrltest.Client.Get(t.Context(), client.ObjectKey{Name: node}, &corev1.Node{}))).To(BeTrue(), "orphan Node %s", node)
			}
		})
	}
}

// The private key changes: the userData Secret is regenerated, the
// existing Machine's host has the new key authorised in place (the Machine
// is not recreated), and a Machine created afterwards joins with the new
// key only.
func TestMachineSetFollowsAKeyChange(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	cloud := msStartCloud(t, configv1.NonePlatformType)
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2, MachineSSHPort: int32(cloud.SSHPort())})
	msWaitUserData(t, configv1.NonePlatformType)
	ms := msMachineSet(t, "win-key", userdata.SecretName)
	msScale(g, ms, 1)
	first := msWaitReady(t, cloud, ms, 1)[0]

	key := &corev1.Secret{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: wmcov1.DefaultCredentialsSecretName}, key)).To(Succeed())
	oldPEM := key.Data[wmcov1.DefaultCredentialsSecretKey]
	t.Cleanup(func() {
		// Later tests' hosts authorise the fixture's key.
		key := &corev1.Secret{}
		if err := ctrltest.Client.Get(context.Background(), client.ObjectKey{Namespace: ctrltest.Namespace, Name: wmcov1.DefaultCredentialsSecretName}, key); err == nil {
			key.Data[wmcov1.DefaultCredentialsSecretKey] = oldPEM
			_ = ctrltest.Client.Update(context.Background(), key)
		}
	})
	newKey, err := winsim.NewUserKey()
	g.Expect(err).NotTo(HaveOccurred())
	newFP := ssh.FingerprintSHA256(newKey.Signer.PublicKey())
	key.Data[wmcov1.DefaultCredentialsSecretKey] = newKey.PEM
	g.Expect(ctrltest.Client.Update(ctx, key)).To(Succeed())

	g.Eventually(func(g Gomega) {
		s := &corev1.Secret{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: userdata.MachineAPINamespace, Name: userdata.SecretName}, s)).To(Succeed())
		g.Expect(s.Data[userdata.SecretKey]).To(ContainSubstring(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newKey.Signer.PublicKey())))))
		wi := &wmcov1.WindowsInstance{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: inventory.MachineInstanceName(first.Namespace, first.Name)}, wi)).To(Succeed())
		g.Expect(wi.Status.AuthorizedKeyFingerprint).To(Equal(newFP), "the existing host rotated in place")
		g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseReady))
	}).WithTimeout(msTimeout).Should(Succeed())

	msScale(g, ms, 2)
	machines := msWaitReady(t, cloud, ms, 2)
	var second *machinev1beta1.Machine
	for i := range machines {
		if machines[i].Name == first.Name {
			g.Expect(machines[i].UID).To(Equal(first.UID), "the first Machine is not recreated")
		} else {
			second = &machines[i]
		}
	}
	g.Expect(second).NotTo(BeNil())
	keys, err := cloud.Host(second.Name).Disk().ReadFile(winsim.AdministratorsAuthorizedKeysPath)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(bytes.Count(bytes.TrimSpace(keys), []byte("\n"))).To(BeZero(), "one key on the new VM")
	g.Expect(string(keys)).To(ContainSubstring(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newKey.Signer.PublicKey())))))
	msScale(g, ms, 0)
	g.Eventually(func(g Gomega) { g.Expect(msMachines(g, ms)).To(BeEmpty()) }).WithTimeout(msTimeout).Should(Succeed())
}

// A VM whose userData authorises no key (here: the operator's script with
// the key line cut out) never lets the operator in: its Machine says so
// within the bound, with a Warning Event, and never gets a Node.
func TestMachineWhoseVMCannotUseItsUserDataSaysSo(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	cloud := msStartCloud(t, configv1.NonePlatformType)
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MachineSSHPort: int32(cloud.SSHPort()), MachineAccessTimeout: 5 * time.Second})
	none, _ := platform.Lookup(configv1.NonePlatformType)
	good, err := userdata.Render(none, ctrltest.Signer.PublicKey())
	g.Expect(err).NotTo(HaveOccurred())
	keyLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ctrltest.Signer.PublicKey())))
	lines := strings.Split(string(good), "\n")
	lines = slices.DeleteFunc(lines, func(l string) bool { return strings.Contains(l, keyLine) })
	g.Expect(len(lines)).To(BeNumerically("<", len(strings.Split(string(good), "\n"))), "the key line was cut")
	broken := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: userdata.MachineAPINamespace, Name: "broken-user-data"},
		Data:       map[string][]byte{userdata.SecretKey: []byte(strings.Join(lines, "\n"))},
	}
	g.Expect(ctrltest.Client.Create(ctx, broken)).To(Succeed())
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), broken) })

	ms := msMachineSet(t, "win-broken", broken.Name)
	msScale(g, ms, 1)
	g.Eventually(func(g Gomega) {
		machines := msMachines(g, ms)
		g.Expect(machines).To(HaveLen(1))
		var c *machinev1beta1.Condition
		for i := range machines[0].Status.Conditions {
			if machines[0].Status.Conditions[i].Type == inventory.MachineConditionAccessible {
				c = &machines[0].Status.Conditions[i]
			}
		}
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(corev1.ConditionFalse))
		g.Expect(c.Message).To(ContainSubstring("windows-user-data"))
		evs, err := ctrltest.Clientset.CoreV1().Events(ms.Namespace).List(ctx, metav1.ListOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		found := false
		for _, ev := range evs.Items {
			found = found || (ev.InvolvedObject.Name == machines[0].Name && ev.Reason == inventory.EventMachineNotAccessible)
		}
		g.Expect(found).To(BeTrue(), "Warning Event on the Machine")
	}).WithTimeout(msTimeout).Should(Succeed())
	var nodes corev1.NodeList
	g.Expect(ctrltest.Client.List(ctx, &nodes, client.MatchingLabels{wmcov1.LabelSource: wmcov1.SourceMachine})).To(Succeed())
	for _, n := range nodes.Items {
		g.Expect(n.Labels[wmcov1.LabelInstance]).NotTo(HavePrefix("machine-win-broken"))
	}
	msScale(g, ms, 0)
	g.Eventually(func(g Gomega) { g.Expect(msMachines(g, ms)).To(BeEmpty()) }).WithTimeout(msTimeout).Should(Succeed())
}
