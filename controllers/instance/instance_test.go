package instance_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/localcluster"
	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// A WindowsInstance becomes a Ready, labelled, tainted Node; deleting it
// drains the Node, cleans the host and deletes the Node.
func TestInstanceJoinsAndLeaves(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{})
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2})
	h := hosts[0]
	// What C:\k's security is as each payload file lands there.
	var mu sync.Mutex
	var payloadFolderSecurity []string
	defer h.Host.Observe(winsim.Observer{FileCreated: func(p string) {
		if strings.HasPrefix(strings.ToLower(strings.ReplaceAll(p, `\`, "/")), "c:/k/payload/") {
			sd, _ := h.Host.Disk().Security(wicdapi.InstallRoot)
			mu.Lock()
			defer mu.Unlock()
			payloadFolderSecurity = append(payloadFolderSecurity, sd)
		}
	}})()

	start := time.Now()
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	node := ctrltest.WaitReady(t, h.Name, 90*time.Second)
	t.Logf("host %s joined as a Ready node in %s", h.Name, time.Since(start).Round(time.Millisecond))
	// The agent secured C:\k (wicd stage) before the payload's upload.
	mu.Lock()
	g.Expect(payloadFolderSecurity).NotTo(BeEmpty())
	g.Expect(payloadFolderSecurity).To(HaveEach(wicd.AgentFolderSDDL), "C:\\k only for SYSTEM and Administrators before any payload file lands")
	mu.Unlock()
	g.Expect(h.Host.Disk().Security(wicdapi.KubeletPKIDir)).To(Equal(wicd.AgentFolderSDDL))
	// Every reconcile of the join (payload and plan, the Node's
	// registration, readiness and labels) used the first one's connection.
	g.Expect(h.Host.Stats().Connections).To(BeEquivalentTo(1), "one SSH connection for the whole join")

	g.Expect(node.Name).To(Equal(h.Name), "the node name is the host's hostname in lower case")
	g.Expect(node.Labels).To(HaveKeyWithValue(wmcov1.LabelOSID, "Windows"))
	g.Expect(node.Labels).To(HaveKeyWithValue(wmcov1.LabelWorkerRole, ""))
	g.Expect(node.Labels).To(HaveKeyWithValue(wmcov1.LabelInstance, h.Name))
	g.Expect(node.Labels).To(HaveKeyWithValue(wmcov1.LabelSource, "user"))
	g.Expect(node.Labels).To(HaveKeyWithValue("kubernetes.io/os", "windows"))
	g.Expect(node.Annotations).To(HaveKeyWithValue(wmcov1.AnnotationPayloadVersion, ctrltest.Payload.Version))
	g.Expect(node.Spec.Taints).To(ContainElement(corev1.Taint{Key: "os", Value: "Windows", Effect: corev1.TaintEffectNoSchedule}))

	wi := &wmcov1.WindowsInstance{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, wi)).To(Succeed())
	g.Expect(wi.Finalizers).To(ContainElement(wmcov1.Finalizer))
	g.Expect(wi.Status.HostKey).To(Equal(h.Host.HostKey()), "the host key is pinned on first use")
	g.Expect(wi.Status.Host.OSBuild).To(Equal(int32(20348)))
	g.Expect(wi.Status.PayloadVersion).To(Equal(ctrltest.Payload.Version))
	g.Expect(wi.Status.ObservedGeneration).To(Equal(wi.Generation))
	for c, reason := range map[string]string{
		wmcov1.ConditionReachable: instance.ReasonConnected, wmcov1.ConditionPreflightPassed: instance.ReasonPreflightPassed,
		wmcov1.ConditionConfigured: instance.ReasonPlanApplied, wmcov1.ConditionNodeReady: instance.ReasonNodeReady,
		wmcov1.ConditionReady: instance.ReasonReady,
	} {
		g.Expect(meta.IsStatusConditionTrue(wi.Status.Conditions, c)).To(BeTrue(), c)
		g.Expect(meta.FindStatusCondition(wi.Status.Conditions, c).Reason).To(Equal(reason), c)
	}
	for _, c := range []string{wmcov1.ConditionReconciling, wmcov1.ConditionStalled} {
		g.Expect(meta.FindStatusCondition(wi.Status.Conditions, c)).To(BeNil(), "kstatus: a Ready instance is neither %s", c)
	}
	// The bootstrap identity is revoked after the join: its ServiceAccount
	// and the Secret keeping its token are gone.
	var sas corev1.ServiceAccountList
	g.Expect(ctrltest.Client.List(ctx, &sas, client.InNamespace(ctrltest.Namespace), client.MatchingLabels{wmcov1.LabelInstance: h.Name})).To(Succeed())
	g.Expect(sas.Items).To(BeEmpty(), "the bootstrap ServiceAccount is deleted after the join")
	var tokens corev1.SecretList
	g.Expect(ctrltest.Client.List(ctx, &tokens, client.InNamespace(ctrltest.Namespace), client.MatchingLabels{wmcov1.LabelInstance: h.Name})).To(Succeed())
	g.Expect(tokens.Items).To(BeEmpty(), "the bootstrap token is deleted after the join")

	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
	err := ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, &corev1.Node{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the Node is deleted")
	ctrltest.ExpectHostClean(g, h)
}

// A key the host refuses is terminal: one attempt, a condition that says
// so, and a retry as soon as the Secret changes.
func TestWrongKeyIsTerminalUntilTheSecretChanges(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{})
	h := hosts[0]
	// The host trusts another key than the one in the Secret.
	h.Host.RevokeKeys("Administrator")
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2})

	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	g.Eventually(func(g Gomega) {
		wi := &wmcov1.WindowsInstance{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, wi)).To(Succeed())
		c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionReachable)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(instance.ReasonAuthenticationFailed))
		g.Expect(c.Message).To(ContainSubstring("refused the SSH key for user Administrator"))
		g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseFailed))
		// kstatus: stalled, not reconciling, this generation observed.
		stalled := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionStalled)
		g.Expect(stalled).NotTo(BeNil())
		g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(stalled.Reason).To(Equal(instance.ReasonAuthenticationFailed))
		g.Expect(meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionReconciling)).To(BeNil())
		g.Expect(wi.Status.ObservedGeneration).To(Equal(wi.Generation))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Consistently(func() int64 { return h.Host.Stats().AuthFailures }).
		WithTimeout(5*time.Second).WithPolling(250*time.Millisecond).Should(BeNumerically("<=", 1), "no retry storm")
	t.Logf("authentication attempts in 5 s after the failure: %d", h.Host.Stats().AuthFailures)

	// Fixing the host's side and touching the Secret retries at once.
	h.Host.AuthorizeKey("Administrator", ctrltest.Signer.PublicKey())
	sec := &corev1.Secret{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: wmcov1.DefaultCredentialsSecretName}, sec)).To(Succeed())
	if sec.Annotations == nil {
		sec.Annotations = map[string]string{}
	}
	sec.Annotations["wmco.io/test-touched"] = time.Now().String()
	g.Expect(ctrltest.Client.Update(ctx, sec)).To(Succeed())
	ctrltest.WaitReady(t, h.Name, 90*time.Second)
	wi := &wmcov1.WindowsInstance{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, wi)).To(Succeed())
	g.Expect(meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionStalled)).To(BeNil(), "no longer stalled")
	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
}

// A host that refuses connections is retried no faster than once a
// second: its SSH server will not have started a few milliseconds later,
// and each retry is a dial, an event and a log line on the cores the
// hosts that answer are joining with. Once the instance names the port
// its SSH server listens on, it joins.
func TestRefusingHostIsRetriedAtMostOnceASecond(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{})
	h := hosts[0]
	// A port nothing listens on refuses the connection.
	l, err := net.Listen("tcp", net.JoinHostPort(h.IP, "0"))
	g.Expect(err).NotTo(HaveOccurred())
	refused := l.Addr().(*net.TCPAddr).Port
	g.Expect(l.Close()).To(Succeed())
	dialer := ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2})

	wi := ctrltest.InstanceFor(h)
	wi.Spec.Port = int32(refused)
	g.Expect(ctrltest.Client.Create(ctx, wi)).To(Succeed())
	awaitReachableReason(g, h.Name, instance.ReasonUnreachable, wmcov1.PhaseConnecting)
	// The instance's rate limiter alone (5 ms, doubling) would retry 8
	// times in the first 1.3 s and 10 times in 3 s; a slower machine only
	// dials less.
	first := dialer.Dials.Load()
	g.Consistently(func() int32 { return dialer.Dials.Load() - first }).
		WithTimeout(3*time.Second).WithPolling(100*time.Millisecond).Should(BeNumerically("<=", 4), "dials in 3 s")
	t.Logf("dials of a refusing host: %d before the condition was seen, %d in the 3 s after", first, dialer.Dials.Load()-first)

	g.Expect(ctrltest.UpdateInstance(ctx, h.Name, func(wi *wmcov1.WindowsInstance) { wi.Spec.Port = int32(h.Host.Port()) })).To(Succeed())
	ctrltest.WaitReady(t, h.Name, 90*time.Second)
	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
	ctrltest.ExpectHostClean(g, h)
}

// awaitReachableReason waits until the instance name's Reachable condition
// has reason and its phase is phase.
func awaitReachableReason(g *WithT, name, reason string, phase wmcov1.InstancePhase) {
	g.Eventually(func(g Gomega) {
		got := &wmcov1.WindowsInstance{}
		g.Expect(ctrltest.Client.Get(context.Background(), client.ObjectKey{Name: name}, got)).To(Succeed())
		c := meta.FindStatusCondition(got.Status.Conditions, wmcov1.ConditionReachable)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(reason))
		g.Expect(got.Status.Phase).To(Equal(phase))
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

// A host presenting another host key than the pinned one is never given a
// command.
func TestHostKeyMismatchRunsNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 2, simagent.Options{})
	h, other := hosts[0], hosts[1]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2})

	wi := ctrltest.InstanceFor(h)
	wi.Spec.HostKey = other.Host.HostKey()
	g.Expect(ctrltest.Client.Create(ctx, wi)).To(Succeed())
	awaitReachableReason(g, h.Name, instance.ReasonHostKeyMismatch, wmcov1.PhaseFailed)
	g.Consistently(func() int64 { return h.Host.Stats().Commands }).WithTimeout(3*time.Second).Should(BeZero(), "no command runs on a host with the wrong key")

	ctrltest.DeleteAndWait(t, h.Name, 30*time.Second)
}

// Ten hosts at once all join; no more than maxParallelConfigurations are
// configured at the same time. Lowering the setting in WindowsNodeConfig
// takes effect without a restart.
func TestTenHostsJoinWithBoundedParallelism(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	const n, parallel, later = 10, 3, 3
	hosts := ctrltest.StartHosts(t, n+later, simagent.Options{})
	dialer := ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: parallel})
	// Configurations are counted on the hosts' side: hosts running an
	// agent command or receiving a file at once. (A host not known to
	// answer is dialled before it takes a slot, so connections may briefly
	// outnumber them.) The uploads are the join's longest step: agent
	// commands alone are short enough that a fast join may never overlap
	// them.
	busy := winsim.BusyCounter{Uploads: true}
	defer busy.Stop()
	for _, h := range hosts {
		busy.Watch(h.Host)
	}

	start := time.Now()
	for _, h := range hosts[:n] {
		g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	}
	for _, h := range hosts[:n] {
		ctrltest.WaitReady(t, h.Name, 3*time.Minute)
	}
	t.Logf("%d hosts Ready in %s; peak hosts configured at once %d (limit %d), peak sessions %d; %d dials",
		n, time.Since(start).Round(time.Millisecond), busy.Peak(), parallel, dialer.Peak.Load(), dialer.Dials.Load())
	g.Expect(busy.Peak()).To(BeNumerically("<=", parallel))
	g.Expect(busy.Peak()).To(BeNumerically(">", 1), "hosts are configured in parallel")
	// Each host is dialled once per join: a host dialled before it took a
	// slot keeps that connection while it waits (parked). The slack is
	// for a kept connection that idled out (20 s) on a slow machine.
	g.Expect(dialer.Dials.Load()).To(BeNumerically("<=", n+2), "dials")

	// One at a time from now on, without restarting the operator.
	ctrltest.SetNodeConfig(t, func(spec *wmcov1.WindowsNodeConfigSpec) { spec.MaxParallelConfigurations = 1 })
	g.Eventually(dialer.Open.Load).WithTimeout(time.Minute).Should(BeZero())
	busy.ResetPeak()
	for _, h := range hosts[n:] {
		g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	}
	for _, h := range hosts[n:] {
		ctrltest.WaitReady(t, h.Name, 3*time.Minute)
	}
	t.Logf("%d more hosts Ready with maxParallelConfigurations 1; peak hosts configured at once %d", later, busy.Peak())
	g.Expect(busy.Peak()).To(Equal(1))

	for _, h := range hosts {
		g.Expect(ctrltest.Client.Delete(ctx, &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: h.Name}})).To(Succeed())
	}
	for _, h := range hosts {
		ctrltest.DeleteAndWait(t, h.Name, 2*time.Minute)
		ctrltest.ExpectHostClean(g, h)
	}
}

// A host whose key changes after it joined (pinned on first use) is no
// longer trusted: HostKeyMismatch, and no further command runs on it.
func TestChangedHostKeyIsNotTrusted(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{})
	h := hosts[0]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	ctrltest.WaitReady(t, h.Name, 90*time.Second)

	_, err := h.Host.RotateHostKey()
	g.Expect(err).NotTo(HaveOccurred())
	// A new host key takes an sshd restart (or another machine at the
	// address): the connection the operator kept from the join ends.
	h.Host.ResetConnections()
	commands := h.Host.Stats().Commands
	// Any spec-level change brings a reconcile; a label is the least.
	g.Expect(ctrltest.UpdateInstance(ctx, h.Name, func(wi *wmcov1.WindowsInstance) {
		if wi.Labels == nil {
			wi.Labels = map[string]string{}
		}
		wi.Labels["wmco.io/test-touch"] = "1"
	})).To(Succeed())
	wi := &wmcov1.WindowsInstance{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, wi)).To(Succeed())

	awaitReachableReason(g, h.Name, instance.ReasonHostKeyMismatch, wmcov1.PhaseFailed)
	g.Consistently(func() int64 { return h.Host.Stats().Commands }).WithTimeout(3*time.Second).Should(Equal(commands),
		"no command runs on a host that presents another key")
	// The message names the one fix that works, with the key to check:
	// spec.hostKey is empty already, and status.hostKey stays pinned.
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, wi)).To(Succeed())
	g.Expect(wi.Spec.HostKey).To(BeEmpty())
	g.Expect(meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionReachable).Message).To(
		ContainSubstring("set spec.hostKey to it (" + h.Host.HostKey() + ")"))

	// Deleting it cannot clean a host it does not trust; the finalizer
	// stays until the admin repins or removes it.
	g.Expect(ctrltest.Client.Delete(ctx, wi)).To(Succeed())
	g.Consistently(func() error {
		return ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, &wmcov1.WindowsInstance{})
	}).WithTimeout(2 * time.Second).Should(Succeed())
	g.Expect(h.Host.Stats().Commands).To(Equal(commands))
	// Its status says what holds it, and how to let it go.
	g.Eventually(func(g Gomega) {
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, wi)).To(Succeed())
		g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseDeprovisioning))
		ready := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Reason).To(Equal(instance.ReasonHostKeyMismatch))
		g.Expect(wi.Status.Message).To(And(ContainSubstring("cannot clean the host"), ContainSubstring("set spec.hostKey to it"),
			ContainSubstring("annotate the instance "+wmcov1.AnnotationAbandonHost+"=<why>")))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(ctrltest.UpdateInstance(ctx, h.Name, func(wi *wmcov1.WindowsInstance) { wi.Spec.HostKey = h.Host.HostKey() })).To(Succeed())
	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
	ctrltest.ExpectHostClean(g, h)
}

// The operator's metrics count instances by phase and CSR decisions.
func TestMetricsReportInstancesAndCSRDecisions(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{})
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(hosts[0]))).To(Succeed())
	ctrltest.WaitReady(t, hosts[0].Name, 90*time.Second)

	g.Eventually(func(g Gomega) {
		values, err := ctrltest.Metrics()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(values["wmco_instances,phase=Ready"]).To(BeNumerically(">=", 1))
		g.Expect(values["wmco_csr_decisions_total,result=approved"]).To(BeNumerically(">=", 2), "client and serving CSRs")
		g.Expect(values["wmco_configuration_duration_seconds"]).To(BeNumerically(">=", 1))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	ctrltest.DeleteAndWait(t, hosts[0].Name, 60*time.Second)
}

// Changing spec.nodeName of a joined host deconfigures it and joins it
// again under the new name; the old Node goes away.
func TestRenamedHostJoinsUnderItsNewName(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{})
	h := hosts[0]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	ctrltest.WaitReady(t, h.Name, 90*time.Second)

	g.Expect(ctrltest.UpdateInstance(ctx, h.Name, func(wi *wmcov1.WindowsInstance) { wi.Spec.NodeName = h.Name + "-renamed" })).To(Succeed())

	g.Eventually(func() bool {
		return apierrors.IsNotFound(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, &corev1.Node{}))
	}).WithTimeout(60*time.Second).Should(BeTrue(), "the old Node is deleted")
	node := ctrltest.WaitReady(t, h.Name, 90*time.Second)
	g.Expect(node.Name).To(Equal(h.Name + "-renamed"))
	g.Expect(node.Labels).To(HaveKeyWithValue(wmcov1.LabelInstance, h.Name))

	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
	ctrltest.ExpectHostClean(g, h)
}

// expectStalled waits for the instance to be Stalled with reason, phase
// Failed, and returns it.
func expectStalled(t *testing.T, name, reason string) *wmcov1.WindowsInstance {
	t.Helper()
	g := NewWithT(t)
	wi := &wmcov1.WindowsInstance{}
	g.Eventually(func(g Gomega) {
		g.Expect(ctrltest.Client.Get(t.Context(), client.ObjectKey{Name: name}, wi)).To(Succeed())
		c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionStalled)
		g.Expect(c).NotTo(BeNil(), "phase %s: %s", wi.Status.Phase, wi.Status.Message)
		g.Expect(c.Reason).To(Equal(reason))
		g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseFailed))
	}).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	return wi
}

// A credentials Secret that does not exist, or lacks the key, stalls the
// instance with a reason that says which, before any connection; a fixed
// Secret is picked up at once.
func TestMissingKeySecretStallsWithoutConnecting(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	h := ctrltest.StartHosts(t, 1, simagent.Options{})[0]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{})
	attempts := func() int64 { st := h.Host.Stats(); return st.Connections + st.AuthFailures }
	wi := ctrltest.InstanceFor(h)
	wi.Spec.CredentialsSecretRef = wmcov1.SecretKeyReference{Namespace: ctrltest.Namespace, Name: "key-of-" + h.Name, Key: "id"}
	g.Expect(ctrltest.Client.Create(ctx, wi)).To(Succeed())

	got := expectStalled(t, h.Name, instance.ReasonSecretNotFound)
	g.Expect(got.Status.Message).To(ContainSubstring("key-of-" + h.Name))
	g.Expect(attempts()).To(BeZero(), "no connection without a key")

	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ctrltest.Namespace, Name: "key-of-" + h.Name},
		Data: map[string][]byte{"other": ctrltest.KeyPEM}}
	g.Expect(ctrltest.Client.Create(ctx, sec)).To(Succeed())
	expectStalled(t, h.Name, instance.ReasonInvalidKey)
	g.Expect(attempts()).To(BeZero())

	sec.Data = map[string][]byte{"id": ctrltest.KeyPEM}
	g.Expect(ctrltest.Client.Update(ctx, sec)).To(Succeed())
	ctrltest.WaitReady(t, h.Name, 90*time.Second)
	// The key is needed to clean the host: delete the instance first.
	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
	g.Expect(ctrltest.Client.Delete(ctx, sec)).To(Succeed())
}

// A WindowsNodeConfig that cannot render stalls the host at RenderFailed
// rather than retrying; fixing the config lets it join.
func TestInvalidNodeConfigStallsUntilFixed(t *testing.T) {
	h := ctrltest.StartHosts(t, 1, simagent.Options{})[0]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{})
	ctrltest.SetNodeConfig(t, func(spec *wmcov1.WindowsNodeConfigSpec) {
		spec.Network.ClusterNetworkCIDR = localcluster.ServiceCIDR // overlaps the service network
	})
	NewWithT(t).Expect(ctrltest.Client.Create(t.Context(), ctrltest.InstanceFor(h))).To(Succeed())
	wi := expectStalled(t, h.Name, instance.ReasonRenderFailed)
	NewWithT(t).Expect(wi.Status.Message).To(ContainSubstring("clusterNetworkCIDR"))

	ctrltest.SetNodeConfig(t, func(spec *wmcov1.WindowsNodeConfigSpec) { spec.Network.ClusterNetworkCIDR = "" })
	ctrltest.WaitReady(t, h.Name, 90*time.Second)
	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
}

// A host without the Containers feature gets it enabled and is rebooted
// (PreflightPassed says so meanwhile), then joins.
func TestContainersFeatureEnabledWithReboot(t *testing.T) {
	g := NewWithT(t)
	h := ctrltest.StartHosts(t, 1, simagent.Options{ContainersFeatureDisabled: true})[0]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{})
	g.Expect(ctrltest.Client.Create(t.Context(), ctrltest.InstanceFor(h))).To(Succeed())
	// The reboot may be over before a poll sees the Rebooting status: its
	// Event stays.
	g.Eventually(func(g Gomega) []string { return instanceEvents(g, h.Name) }).WithTimeout(60 * time.Second).
		Should(ContainElement(HavePrefix(instance.ReasonRebooting + ": ")))
	ctrltest.WaitReady(t, h.Name, 2*time.Minute)
	// Preflight passes only with Containers enabled.
	g.Expect(meta.IsStatusConditionTrue(getInstance(g, h.Name).Status.Conditions, wmcov1.ConditionPreflightPassed)).To(BeTrue())
	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
}

// A host that accepts connections and never answers holds no
// configuration slot while it is dialled: with maxParallelConfigurations
// 1, a good host listed while that dial hangs joins without waiting for
// a slot.
func TestHostThatNeverAnswersHoldsNoSlot(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{})
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 1})

	silent, err := net.Listen("tcp", "127.0.9.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		_ = silent.Close()
		for c := range accepted {
			_ = c.Close()
		}
	})
	dead := &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: "silent"}, Spec: wmcov1.WindowsInstanceSpec{
		Address: "127.0.9.1", Port: int32(silent.Addr().(*net.TCPAddr).Port), Username: "Administrator"}}
	g.Expect(ctrltest.Client.Create(ctx, dead)).To(Succeed())
	// Its dial is under way: the connection is open and nothing answers.
	var first net.Conn
	g.Eventually(accepted).WithTimeout(time.Minute).Should(Receive(&first))
	defer func() { _ = first.Close() }()

	good := ctrltest.InstanceFor(hosts[0])
	g.Expect(ctrltest.Client.Create(ctx, good)).To(Succeed())
	waited := false
	g.Eventually(func(g Gomega) {
		wi := &wmcov1.WindowsInstance{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKeyFromObject(good), wi)).To(Succeed())
		for _, c := range wi.Status.Conditions {
			waited = waited || c.Reason == instance.ReasonWaitingSlot
		}
		g.Expect(meta.IsStatusConditionTrue(wi.Status.Conditions, wmcov1.ConditionReady)).To(BeTrue())
	}).WithTimeout(3 * time.Minute).WithPolling(20 * time.Millisecond).Should(Succeed())
	g.Expect(waited).To(BeFalse(), "the good host never waited for the slot")
	g.Expect(hosts[0].Host.Stats().Connections).To(BeEquivalentTo(1), "one SSH connection for the whole join")

	ctrltest.DeleteAndWait(t, dead.Name, 2*time.Minute)
	ctrltest.DeleteAndWait(t, good.Name, 2*time.Minute)
}

// A joining host's status says what runs while it runs: the payload's
// upload (phase Provisioning, how many files) during the transfer, and the
// apply (phase Configuring) while the agent starts the services.
func TestJoinShowsEachStepWhileItRuns(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{})
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2})
	h := hosts[0]

	type seen struct {
		phase          wmcov1.InstancePhase
		reason, detail string
	}
	var (
		mu                 sync.Mutex
		uploading, applied []seen
	)
	// The observer runs on the host's goroutine, before the upload's first
	// byte or the agent's start: what the API server holds then is what
	// an admin sees during that step.
	look := func(into *[]seen) {
		wi := &wmcov1.WindowsInstance{}
		if err := ctrltest.Client.Get(context.Background(), client.ObjectKey{Name: h.Name}, wi); err != nil {
			return
		}
		s := seen{phase: wi.Status.Phase}
		if c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionConfigured); c != nil {
			s.reason, s.detail = c.Reason, c.Message
		}
		mu.Lock()
		*into = append(*into, s)
		mu.Unlock()
	}
	dir := strings.ToLower(payload.HostDir(ctrltest.Payload.Version) + `\`)
	defer h.Host.Observe(winsim.Observer{
		FileCreated: func(p string) {
			if strings.HasPrefix(strings.ToLower(strings.ReplaceAll(p, "/", `\`)), dir) {
				look(&uploading)
			}
		},
		Request: func(q winsim.Request) func() {
			if q.Kind == "exec" && len(q.Args) > 1 && q.Args[1] == "apply" {
				look(&applied)
			}
			return nil
		},
	})()

	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	ctrltest.WaitReady(t, h.Name, 90*time.Second)
	mu.Lock()
	defer mu.Unlock()
	g.Expect(uploading).NotTo(BeEmpty(), "payload files were uploaded")
	g.Expect(uploading[0].phase).To(Equal(wmcov1.PhaseProvisioning))
	g.Expect(uploading[0].reason).To(Equal(instance.ReasonPayloadTransfer))
	g.Expect(uploading[0].detail).To(MatchRegexp(`^uploading \d+ payload files \(\d+ bytes\), copying \d+ on the host$`))
	g.Expect(applied).NotTo(BeEmpty(), "the plan was applied")
	g.Expect(applied[0].phase).To(Equal(wmcov1.PhaseConfiguring))
	g.Expect(applied[0].reason).To(Equal(instance.ReasonApplyingPlan))
	g.Expect(applied[0].detail).To(Equal("applying the node configuration of payload " + ctrltest.Payload.Version))
}
