package machinesim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	configv1 "github.com/openshift/api/config/v1"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/openwmco/wmco/pkg/platform"
	"github.com/openwmco/wmco/pkg/userdata"
	"github.com/openwmco/wmco/test/localcluster"
	"github.com/openwmco/wmco/test/machinesim"
	"github.com/openwmco/wmco/test/openshiftcrds"
	"github.com/openwmco/wmco/test/winsim"
)

var (
	cluster *localcluster.Cluster
	k8s     client.Client
)

func TestMain(m *testing.M) {
	// The machine is shared: waits are for state, never timing, so they
	// may be long.
	SetDefaultEventuallyTimeout(30 * time.Second)
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	c, err := localcluster.Start(ctx, localcluster.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start local control plane:", err)
		return 1
	}
	defer func() { _ = c.Stop() }()
	cluster = c
	if err := openshiftcrds.Install(ctx, c.Config); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, machinev1beta1.Install, configv1.Install} {
		if err := add(scheme); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if k8s, err = client.New(c.Config, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// uniqueNamespace is a namespace name no other test (or run, with -count)
// uses.
func uniqueNamespace(prefix string) string { return prefix + "-" + utilrand.String(5) }

// testLog sends the cloud's log to the test's.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a late line after the test ended
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startCloud runs a Cloud of the platform in its own namespace until the
// test ends, and logs its events at the end.
func startCloud(t *testing.T, p configv1.PlatformType, ns string, mutate ...func(*machinesim.Options)) *machinesim.Cloud {
	t.Helper()
	opts := machinesim.Options{Config: cluster.Config, Platform: p, Namespace: ns, RetryInterval: 200 * time.Millisecond, Log: testLog{t}}
	for _, m := range mutate {
		m(&opts)
	}
	c, err := machinesim.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, e := range c.Events() {
			t.Log(e)
		}
		c.Stop()
	})
	return c
}

// newKey returns a client key pair.
func newKey(t *testing.T) winsim.UserKey {
	t.Helper()
	k, err := winsim.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// userData is the operator's first-boot script for the platform,
// authorising key.
func userData(t *testing.T, c *machinesim.Cloud, key winsim.UserKey) []byte {
	t.Helper()
	data, err := userdata.Render(c.Platform(), key.Signer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func createUserDataSecret(t *testing.T, ns, name string, data []byte) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{"userData": data}}
	if err := k8s.Create(t.Context(), s); err != nil {
		t.Fatal(err)
	}
}

// providerSpec is a providerSpec naming the userData Secret.
func providerSpec(secret string) machinev1beta1.ProviderSpec {
	raw, _ := json.Marshal(map[string]any{
		"userDataSecret": map[string]string{"name": secret},
		"placement":      map[string]string{"availabilityZone": "us-east-1b"},
	})
	return machinev1beta1.ProviderSpec{Value: &runtime.RawExtension{Raw: raw}}
}

const osIDLabel = "machine.openshift.io/os-id"

func newMachineSet(ns, name, secret string, replicas int32) *machinev1beta1.MachineSet {
	sel := map[string]string{"machine.openshift.io/cluster-api-machineset": name}
	tmplLabels := map[string]string{"machine.openshift.io/cluster-api-machineset": name, osIDLabel: "Windows"}
	return &machinev1beta1.MachineSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: machinev1beta1.MachineSetSpec{
			Replicas: ptr.To(replicas),
			Selector: metav1.LabelSelector{MatchLabels: sel},
			Template: machinev1beta1.MachineTemplateSpec{
				ObjectMeta: machinev1beta1.ObjectMeta{Labels: tmplLabels},
				Spec: machinev1beta1.MachineSpec{
					ObjectMeta:   machinev1beta1.ObjectMeta{Labels: map[string]string{"node-role.kubernetes.io/worker": ""}},
					ProviderSpec: providerSpec(secret),
				},
			},
		},
	}
}

// createMachine creates a Machine whose userData is in the Secret named
// secret (deleted when the test ends if still there).
func createMachine(t *testing.T, g Gomega, ns, name, secret string, mutate ...func(*machinev1beta1.Machine)) *machinev1beta1.Machine {
	m := &machinev1beta1.Machine{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       machinev1beta1.MachineSpec{ProviderSpec: providerSpec(secret)},
	}
	for _, f := range mutate {
		f(m)
	}
	g.Expect(k8s.Create(t.Context(), m)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), m) })
	return m
}

// waitForPhase waits until m (refreshed) is in phase.
func waitForPhase(ctx context.Context, g Gomega, m *machinev1beta1.Machine, phase string) {
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(m), m)).To(Succeed())
		g.Expect(m.Status.Phase).To(HaveValue(Equal(phase)))
	}).Should(Succeed())
}

func machines(ctx context.Context, g Gomega, ns string) []machinev1beta1.Machine {
	var list machinev1beta1.MachineList
	g.Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	return list.Items
}

// registerNode creates a Node as a kubelet registers it: with taints, and
// a Ready status with the given addresses. It is deleted when the test
// ends, if it is still there.
func registerNode(t *testing.T, g Gomega, name string, taints []corev1.Taint, addrs ...corev1.NodeAddress) *corev1.Node {
	ctx := t.Context()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/os": "windows"}}, Spec: corev1.NodeSpec{Taints: taints}}
	g.Expect(k8s.Create(ctx, n)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}) })
	before := n.DeepCopy()
	now := metav1.Now()
	n.Status.Addresses = addrs
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: now, LastTransitionTime: now, Reason: "KubeletReady"}}
	// A merge patch: the cloud may have initialised the Node already.
	g.Expect(k8s.Status().Patch(ctx, n, client.MergeFrom(before))).To(Succeed())
	return n
}

var uninitialized = []corev1.Taint{{Key: platform.UninitializedTaint, Value: "true", Effect: corev1.TaintEffectNoSchedule}}

// login opens an SSH connection to the Machine's address on the cloud's
// SSH port, as the operator would.
func login(c *machinesim.Cloud, m *machinev1beta1.Machine, user string, key winsim.UserKey) error {
	h := c.Host(m.Name)
	if h == nil {
		return fmt.Errorf("no VM for %s", m.Name)
	}
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(h.HostKey()))
	if err != nil {
		return err
	}
	conn, err := ssh.Dial("tcp", fmt.Sprintf("%s:%d", machinesim.MachineAddress(m, corev1.NodeInternalIP), c.SSHPort()), &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(key.Signer)}, HostKeyCallback: ssh.FixedHostKey(hostKey), Timeout: 10 * time.Second,
	})
	if err != nil {
		return err
	}
	return conn.Close()
}

// kinds lists the kinds of events, with the detail where it tells
// stages apart.
func kinds(events []machinesim.Event) []string {
	var out []string
	for _, e := range events {
		k := string(e.Kind)
		if e.Kind == machinesim.EventHeldByHooks || e.Kind == machinesim.EventHooksCleared {
			stage, _, _ := strings.Cut(e.Detail, ":")
			k += " " + stage
		}
		out = append(out, k)
	}
	return out
}

// A Windows MachineSet on AWS scales from 0 to 2: two Machines from the
// template, each with a VM that accepts the userData's key on the SSH
// port at its own address, AWS's provider ID, addresses and computer
// name; the cloud controller manager initialises a Node named after the
// private DNS name; back to 0, the Machines, VMs and Node go.
func TestMachineSetScalesUpAndDownOnAWS(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := uniqueNamespace("aws-scale")
	c := startCloud(t, configv1.AWSPlatformType, ns)

	infra := &configv1.Infrastructure{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "cluster"}, infra)).To(Succeed())
	g.Expect(infra.Status.PlatformStatus.Type).To(Equal(configv1.AWSPlatformType))

	key := newKey(t)
	createUserDataSecret(t, ns, "windows-user-data", userData(t, c, key))
	ms := newMachineSet(ns, "win", "windows-user-data", 0)
	g.Expect(k8s.Create(ctx, ms)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(ms), ms)).To(Succeed())
		g.Expect(ms.Status.ObservedGeneration).To(Equal(ms.Generation))
	}).Should(Succeed())
	g.Expect(machines(ctx, g, ns)).To(BeEmpty())

	patch := client.MergeFrom(ms.DeepCopy())
	ms.Spec.Replicas = ptr.To[int32](2)
	g.Expect(k8s.Patch(ctx, ms, patch)).To(Succeed())
	var ms2 []machinev1beta1.Machine
	g.Eventually(func(g Gomega) {
		ms2 = machines(ctx, g, ns)
		g.Expect(ms2).To(HaveLen(2))
		for _, m := range ms2 {
			g.Expect(m.Status.Phase).To(HaveValue(Equal(machinev1beta1.PhaseProvisioned)))
		}
	}).Should(Succeed())
	ips := map[string]bool{}
	for i := range ms2 {
		m := &ms2[i]
		g.Expect(m.Name).To(MatchRegexp(`^win-[a-z0-9]{5}$`))
		g.Expect(m.Labels).To(HaveKeyWithValue(osIDLabel, "Windows"))
		g.Expect(metav1.GetControllerOf(m).Name).To(Equal("win"))
		g.Expect(m.Finalizers).To(ContainElement(machinev1beta1.MachineFinalizer))
		g.Expect(m.Spec.ProviderID).To(HaveValue(MatchRegexp(`^aws:///us-east-1b/i-[0-9a-f]{17}$`)))
		ip := machinesim.MachineAddress(m, corev1.NodeInternalIP)
		g.Expect(ip).To(HavePrefix("127.0.200."))
		ips[ip] = true
		dns := "ip-" + strings.ReplaceAll(ip, ".", "-") + ".ec2.internal"
		g.Expect(machinesim.MachineAddress(m, corev1.NodeInternalDNS)).To(Equal(dns))
		g.Expect(machinesim.MachineAddress(m, corev1.NodeHostName)).To(Equal(dns))
		h := c.Host(m.Name)
		g.Expect(h).NotTo(BeNil())
		g.Expect(h.Facts().Hostname).To(MatchRegexp(`^EC2AMAZ-[A-Z0-9]{7}$`))
		g.Expect(h.Port()).To(Equal(c.SSHPort()))
		g.Expect(login(c, m, "Administrator", key)).To(Succeed(), "the userData's key logs in")
		g.Expect(login(c, m, "Administrator", newKey(t))).NotTo(Succeed(), "another key does not")
	}
	g.Expect(ips).To(HaveLen(2), "each VM has its own address")

	// The kubelet of the first registers as the private DNS name, with
	// the uninitialized taint and (as external cloud providers' kubelets
	// may) no addresses; another Node matches no instance.
	first := &ms2[0]
	nodeName := machinesim.MachineAddress(first, corev1.NodeInternalDNS)
	registerNode(t, g, nodeName, uninitialized)
	registerNode(t, g, "ip-10-9-9-9.ec2.internal", uninitialized)
	g.Eventually(func(g Gomega) {
		n := &corev1.Node{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: nodeName}, n)).To(Succeed())
		g.Expect(n.Spec.ProviderID).To(Equal(*first.Spec.ProviderID))
		g.Expect(n.Spec.Taints).NotTo(ContainElement(HaveField("Key", platform.UninitializedTaint)))
		// The Node has the VM card's address, the Machine the one the VM
		// listens on.
		ip := machinesim.MachineAddress(first, corev1.NodeInternalIP)
		octet, err := strconv.Atoi(ip[strings.LastIndex(ip, ".")+1:])
		g.Expect(err).NotTo(HaveOccurred())
		want := slices.Clone(first.Status.Addresses)
		for i := range want {
			if want[i].Type == corev1.NodeInternalIP {
				want[i].Address = machinesim.NICAddress(octet)
			}
		}
		g.Expect(n.Status.Addresses).To(Equal(want))
		g.Expect(n.Labels).To(HaveKey("node-role.kubernetes.io/worker"), "nodelink copies the Machine's labels")
		m := &machinev1beta1.Machine{}
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(first), m)).To(Succeed())
		g.Expect(m.Status.NodeRef).To(HaveField("Name", nodeName))
		g.Expect(m.Status.Phase).To(HaveValue(Equal(machinev1beta1.PhaseRunning)))
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(ms), ms)).To(Succeed())
		g.Expect(ms.Status.Replicas).To(BeEquivalentTo(2))
		g.Expect(ms.Status.ReadyReplicas).To(BeEquivalentTo(1))
		g.Expect(ms.Status.AvailableReplicas).To(BeEquivalentTo(1))
	}).Should(Succeed())
	g.Eventually(func(g Gomega) {
		n := &corev1.Node{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "ip-10-9-9-9.ec2.internal"}, n)).To(Succeed())
		g.Expect(n.Spec.Taints).To(ContainElement(HaveField("Key", platform.UninitializedTaint)))
		g.Expect(n.Spec.ProviderID).To(BeEmpty())
		g.Expect(kinds(c.EventsOf(""))).To(ContainElement(string(machinesim.EventNodeNotInitialized)))
	}).Should(Succeed())

	hosts := map[string]*winsim.Host{}
	for _, m := range ms2 {
		hosts[m.Name] = c.Host(m.Name)
	}
	patch = client.MergeFrom(ms.DeepCopy())
	ms.Spec.Replicas = ptr.To[int32](0)
	g.Expect(k8s.Patch(ctx, ms, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(machines(ctx, g, ns)).To(BeEmpty())
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(ms), ms)).To(Succeed())
		g.Expect(ms.Status.Replicas).To(BeZero())
	}).Should(Succeed())
	for name, h := range hosts {
		g.Expect(h.State()).To(Equal(winsim.StateClosed), name)
		g.Expect(c.VM(name)).To(BeNil())
		_, ok := c.Snapshot(name)
		g.Expect(ok).To(BeTrue())
	}
	err := k8s.Get(ctx, client.ObjectKey{Name: nodeName}, &corev1.Node{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the cloud deleted the Node: %v", err)
	g.Expect(kinds(c.EventsOf(first.Name))).To(Equal([]string{
		"MachineCreated", "HostBooted", "NodeInitialized", "NodeLinked",
		"MachineDeleted", "DeletionStarted", "NodeDrained", "HostSnapshot", "HostDestroyed", "NodeDeletedByCloud", "MachineReleased",
	}))
	g.Expect(kinds(c.EventsOf(ms2[1].Name))).To(Equal([]string{
		"MachineCreated", "HostBooted",
		"MachineDeleted", "DeletionStarted", "HostSnapshot", "HostDestroyed", "NodeAlreadyGone", "MachineReleased",
	}))
}

// Lifecycle hooks hold a Machine's deletion as in the Machine API: while a
// preDrain hook is there nothing happens to the Node or the VM; then the
// Node is drained (its pod evicted); while a preTerminate hook is there
// the VM stays up; then the VM's state is recorded and it is destroyed,
// and the Node deleted.
func TestLifecycleHooksHoldDeletion(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := uniqueNamespace("hooks")
	c := startCloud(t, configv1.NonePlatformType, ns)
	key := newKey(t)
	createUserDataSecret(t, ns, "windows-user-data", userData(t, c, key))
	m := createMachine(t, g, ns, "held", "windows-user-data", func(m *machinev1beta1.Machine) {
		m.Spec.LifecycleHooks = machinev1beta1.LifecycleHooks{
			PreDrain:     []machinev1beta1.LifecycleHook{{Name: "deconfigure", Owner: "wmco"}},
			PreTerminate: []machinev1beta1.LifecycleHook{{Name: "cleanup", Owner: "wmco"}},
		}
	})
	waitForPhase(ctx, g, m, machinev1beta1.PhaseProvisioned)
	g.Expect(m.Spec.ProviderID).To(BeNil(), "no provider ID on None")
	h := c.Host(m.Name)
	g.Expect(h.Facts().Hostname).To(MatchRegexp(`^WIN-[A-Z0-9]{11}$`))
	g.Expect(login(c, m, "Administrator", key)).To(Succeed())

	// On None the kubelet names the Node after the host and reports its
	// address; nodelink links it by that address.
	ip := machinesim.MachineAddress(m, corev1.NodeInternalIP)
	node := registerNode(t, g, "held-node", nil, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(m), m)).To(Succeed())
		g.Expect(m.Status.NodeRef).To(HaveField("Name", node.Name))
		g.Expect(m.Status.Phase).To(HaveValue(Equal(machinev1beta1.PhaseRunning)))
	}).Should(Succeed())
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: corev1.PodSpec{
			NodeName:   node.Name,
			Containers: []corev1.Container{{Name: "web", Image: "mcr.microsoft.com/oss/kubernetes/pause:3.9"}},
			// No kubelet confirms a graceful deletion here.
			TerminationGracePeriodSeconds: ptr.To[int64](0),
		},
	}
	// The namespace's default ServiceAccount comes moments after it.
	g.Eventually(func() error { return k8s.Create(ctx, pod) }).Should(Succeed())
	g.Expect(h.Disk().MkdirAll(`C:\k`)).To(Succeed())
	g.Expect(h.Disk().WriteFile(`C:\k\left-behind.txt`, []byte("x"))).To(Succeed())

	g.Expect(k8s.Delete(ctx, m)).To(Succeed())
	condition := func(g Gomega, t machinev1beta1.ConditionType) machinev1beta1.Condition {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(m), m)).To(Succeed())
		for _, c := range m.Status.Conditions {
			if c.Type == t {
				return c
			}
		}
		return machinev1beta1.Condition{}
	}
	g.Eventually(func(g Gomega) {
		g.Expect(kinds(c.EventsOf(m.Name))).To(ContainElement("HeldByHooks preDrain"))
		g.Expect(condition(g, machinev1beta1.MachineDrainable)).To(And(HaveField("Status", corev1.ConditionFalse), HaveField("Reason", machinev1beta1.MachineHookPresent)))
		g.Expect(m.Status.Phase).To(HaveValue(Equal(machinev1beta1.PhaseDeleting)))
	}).Should(Succeed())
	g.Expect(h.State()).To(Equal(winsim.StateUp), "held before the drain")
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(node), node)).To(Succeed())
	g.Expect(node.Spec.Unschedulable).To(BeFalse(), "not cordoned while the preDrain hook holds")
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())

	patch := client.MergeFrom(m.DeepCopy())
	m.Spec.LifecycleHooks.PreDrain = nil
	g.Expect(k8s.Patch(ctx, m, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(kinds(c.EventsOf(m.Name))).To(ContainElement("HeldByHooks preTerminate"))
		g.Expect(condition(g, machinev1beta1.MachineTerminable)).To(HaveField("Status", corev1.ConditionFalse))
	}).Should(Succeed())
	g.Expect(h.State()).To(Equal(winsim.StateUp), "held before termination")
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(node), node)).To(Succeed())
	g.Expect(node.Spec.Unschedulable).To(BeTrue(), "cordoned")
	err := k8s.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "evicted: %v", err)

	patch = client.MergeFrom(m.DeepCopy())
	m.Spec.LifecycleHooks.PreTerminate = nil
	g.Expect(k8s.Patch(ctx, m, patch)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(m), &machinev1beta1.Machine{}))
	}).Should(BeTrue())
	g.Expect(h.State()).To(Equal(winsim.StateClosed))
	err = k8s.Get(ctx, client.ObjectKeyFromObject(node), &corev1.Node{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the cloud deleted the Node: %v", err)
	g.Expect(kinds(c.EventsOf(m.Name))).To(Equal([]string{
		"HostBooted", "NodeLinked", "DeletionStarted",
		"HeldByHooks preDrain", "HooksCleared preDrain", "NodeDrained",
		"HeldByHooks preTerminate", "HooksCleared preTerminate",
		"HostSnapshot", "HostDestroyed", "NodeDeletedByCloud", "MachineReleased",
	}))
	snap, ok := c.Snapshot(m.Name)
	g.Expect(ok).To(BeTrue())
	g.Expect(snap.Files).To(Equal([]string{`C:\k\left-behind.txt`}))
	g.Expect(snap.Added).To(Equal([]string{`C:\k\left-behind.txt`}), "the keys file was there since first boot")
	g.Expect(snap.Hostname).To(Equal(h.Facts().Hostname))
}

// A Machine whose userData Secret is missing stays Provisioning with an
// error message and no VM until the Secret appears. A script that
// authorises no key boots a VM nobody can log in to.
func TestUserData(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := uniqueNamespace("userdata")
	c := startCloud(t, configv1.NonePlatformType, ns)
	waiting := createMachine(t, g, ns, "waiting", "late-user-data")
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(waiting), waiting)).To(Succeed())
		g.Expect(waiting.Status.Phase).To(HaveValue(Equal(machinev1beta1.PhaseProvisioning)))
		g.Expect(waiting.Status.ErrorMessage).To(HaveValue(ContainSubstring("userData Secret " + ns + "/late-user-data not found")))
	}).Should(Succeed())
	g.Expect(c.VM(waiting.Name)).To(BeNil())
	g.Expect(kinds(c.EventsOf(waiting.Name))).To(Equal([]string{"UserDataMissing"}))

	key := newKey(t)
	createUserDataSecret(t, ns, "late-user-data", userData(t, c, key))
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(waiting), waiting)).To(Succeed())
		g.Expect(waiting.Status.Phase).To(HaveValue(Equal(machinev1beta1.PhaseProvisioned)))
		g.Expect(waiting.Status.ErrorMessage).To(BeNil())
	}).Should(Succeed())
	g.Expect(login(c, waiting, "Administrator", key)).To(Succeed())

	createUserDataSecret(t, ns, "no-key", []byte("<powershell>\nStart-Service sshd\n</powershell>\n"))
	keyless := createMachine(t, g, ns, "keyless", "no-key")
	waitForPhase(ctx, g, keyless, machinev1beta1.PhaseProvisioned)
	h := c.Host(keyless.Name)
	g.Expect(h).NotTo(BeNil())
	g.Expect(h.AuthorizedKeys("Administrator")).To(BeEmpty())
	g.Expect(login(c, keyless, "Administrator", key)).NotTo(Succeed(), "sshd is up, nothing is authorised")
	g.Expect(kinds(c.EventsOf(keyless.Name))).To(Equal([]string{"NoUsableKey", "HostBooted"}))
}

// On vSphere the cloud controller manager finds a Node's VM by the
// guest's host name: a VM still named after the template leaves its Node
// uninitialised, saying why, until it is renamed and rebooted; a VM whose
// computer name is the Machine's (in any case) gets its Node initialised.
func TestVSphereCCMMatchesTheHostName(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := uniqueNamespace("vsphere")
	c := startCloud(t, configv1.VSpherePlatformType, ns, func(o *machinesim.Options) {
		o.Hostname = func(machine string) string {
			if machine == "vs-named" {
				return strings.ToUpper(machine)
			}
			return machinesim.VSphereTemplateHostname
		}
	})
	key := newKey(t)
	createUserDataSecret(t, ns, "windows-user-data", userData(t, c, key))
	var ms []*machinev1beta1.Machine
	for _, name := range []string{"vs-template", "vs-named"} {
		ms = append(ms, createMachine(t, g, ns, name, "windows-user-data"))
	}
	for _, m := range ms {
		waitForPhase(ctx, g, m, machinev1beta1.PhaseProvisioned)
		g.Expect(m.Spec.ProviderID).To(HaveValue(MatchRegexp(`^vsphere://[0-9a-f-]{36}$`)))
		g.Expect(machinesim.MachineAddress(m, corev1.NodeInternalDNS)).To(Equal(m.Name))
		registerNode(t, g, m.Name, uninitialized, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: machinesim.MachineAddress(m, corev1.NodeInternalIP)})
	}
	g.Eventually(func(g Gomega) {
		n := &corev1.Node{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "vs-named"}, n)).To(Succeed())
		g.Expect(n.Spec.ProviderID).To(Equal(*ms[1].Spec.ProviderID))
		g.Expect(n.Spec.Taints).To(BeEmpty())
	}).Should(Succeed())
	g.Eventually(func(g Gomega) {
		var why []string
		for _, e := range c.EventsOf("vs-template") {
			if e.Kind == machinesim.EventNodeNotInitialized {
				why = append(why, e.Detail)
			}
		}
		g.Expect(why).To(ContainElement(ContainSubstring("is named " + machinesim.VSphereTemplateHostname)))
	}).Should(Succeed())
	n := &corev1.Node{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "vs-template"}, n)).To(Succeed())
	g.Expect(n.Spec.ProviderID).To(BeEmpty())
	g.Expect(n.Spec.Taints).To(ContainElement(HaveField("Key", platform.UninitializedTaint)))

	// Renamed, the name takes effect at the next boot: only then does
	// the cloud controller manager find the VM.
	h := c.Host("vs-template")
	g.Expect(h.SetHostname("vs-template")).To(Succeed())
	g.Expect(h.Facts().Hostname).To(Equal(machinesim.VSphereTemplateHostname))
	g.Expect(h.Reboot(ctx, 0)).To(Succeed())
	g.Expect(h.WaitUp(ctx)).To(Succeed())
	g.Expect(h.Facts().Hostname).To(Equal("vs-template"))
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "vs-template"}, n)).To(Succeed())
		g.Expect(n.Spec.ProviderID).To(Equal(*ms[0].Spec.ProviderID))
		g.Expect(n.Spec.Taints).To(BeEmpty())
	}).Should(Succeed())
}

// Azure's images disable the built-in Administrator: the VM lets in capi,
// which the userData's key is for, and nobody else.
func TestAzureVMLetsInCapiOnly(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := uniqueNamespace("azure")
	c := startCloud(t, configv1.AzurePlatformType, ns)
	key := newKey(t)
	createUserDataSecret(t, ns, "windows-user-data", userData(t, c, key))
	m := createMachine(t, g, ns, "winworker-abcde", "windows-user-data")
	waitForPhase(ctx, g, m, machinev1beta1.PhaseProvisioned)
	g.Expect(c.Host(m.Name).Facts().Hostname).To(Equal("WINWORKER-ABCDE"))
	g.Expect(login(c, m, "capi", key)).To(Succeed())
	g.Expect(login(c, m, "Administrator", key)).NotTo(Succeed(), "no such account, though the key is in the administrators' file")
}

// A Machine provisioned by a Cloud that was stopped has no instance in the
// next one: it is Failed, as the Machine API marks a Machine whose
// instance is gone, and its deletion still completes.
func TestInstanceLostWithTheCloud(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := uniqueNamespace("lost")
	first := startCloud(t, configv1.NonePlatformType, ns)
	createUserDataSecret(t, ns, "windows-user-data", userData(t, first, newKey(t)))
	m := createMachine(t, g, ns, "orphan", "windows-user-data")
	waitForPhase(ctx, g, m, machinev1beta1.PhaseProvisioned)
	h := first.Host(m.Name)
	first.Stop()
	g.Expect(h.State()).To(Equal(winsim.StateClosed))

	second := startCloud(t, configv1.NonePlatformType, ns)
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(m), m)).To(Succeed())
		g.Expect(m.Status.Phase).To(HaveValue(Equal(machinev1beta1.PhaseFailed)))
		g.Expect(m.Status.ErrorMessage).To(HaveValue(Equal("Can't find created instance.")))
	}).Should(Succeed())
	g.Expect(second.VM(m.Name)).To(BeNil(), "no second VM for it")
	g.Expect(k8s.Delete(ctx, m)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(m), &machinev1beta1.Machine{}))
	}).Should(BeTrue())
	g.Expect(kinds(second.EventsOf(m.Name))).To(Equal([]string{"InstanceLost", "DeletionStarted", "NodeAlreadyGone", "MachineReleased"}))
}
