package instance_test

import (
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
	"github.com/openwmco/wmco/test/ctrltest"
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

	start := time.Now()
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	node := ctrltest.WaitReady(t, h.Name, 90*time.Second)
	t.Logf("host %s joined as a Ready node in %s", h.Name, time.Since(start).Round(time.Millisecond))

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
	for _, c := range []string{wmcov1.ConditionReachable, wmcov1.ConditionPreflightPassed, wmcov1.ConditionConfigured, wmcov1.ConditionNodeReady, wmcov1.ConditionReady} {
		g.Expect(meta.IsStatusConditionTrue(wi.Status.Conditions, c)).To(BeTrue(), c)
	}
	var tokens corev1.SecretList
	g.Expect(ctrltest.Client.List(ctx, &tokens, client.InNamespace("kube-system"), client.MatchingLabels{wmcov1.LabelInstance: h.Name})).To(Succeed())
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
	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
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
	g.Eventually(func(g Gomega) {
		got := &wmcov1.WindowsInstance{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, got)).To(Succeed())
		c := meta.FindStatusCondition(got.Status.Conditions, wmcov1.ConditionReachable)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(instance.ReasonHostKeyMismatch))
		g.Expect(got.Status.Phase).To(Equal(wmcov1.PhaseFailed))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Consistently(func() int64 { return h.Host.Stats().Commands }).WithTimeout(3*time.Second).Should(BeZero(), "no command runs on a host with the wrong key")

	ctrltest.DeleteAndWait(t, h.Name, 30*time.Second)
}

// Ten hosts at once all join; no more than maxParallelConfigurations are
// configured at the same time.
func TestTenHostsJoinWithBoundedParallelism(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	const n, parallel = 10, 3
	hosts := ctrltest.StartHosts(t, n, simagent.Options{})
	dialer := ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: parallel})

	start := time.Now()
	for _, h := range hosts {
		g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	}
	for _, h := range hosts {
		ctrltest.WaitReady(t, h.Name, 3*time.Minute)
	}
	t.Logf("%d hosts Ready in %s; peak concurrent host sessions %d (limit %d); %d dials",
		n, time.Since(start).Round(time.Millisecond), dialer.Peak.Load(), parallel, dialer.Dials.Load())
	g.Expect(dialer.Peak.Load()).To(BeNumerically("<=", parallel))
	g.Expect(dialer.Peak.Load()).To(BeNumerically(">", 1), "hosts are configured in parallel")

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
	commands := h.Host.Stats().Commands
	// Any spec-level change brings a reconcile; a label is the least.
	wi := &wmcov1.WindowsInstance{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, wi)).To(Succeed())
	if wi.Labels == nil {
		wi.Labels = map[string]string{}
	}
	wi.Labels["wmco.io/test-touch"] = "1"
	g.Expect(ctrltest.Client.Update(ctx, wi)).To(Succeed())

	g.Eventually(func(g Gomega) {
		got := &wmcov1.WindowsInstance{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, got)).To(Succeed())
		c := meta.FindStatusCondition(got.Status.Conditions, wmcov1.ConditionReachable)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(instance.ReasonHostKeyMismatch))
		g.Expect(got.Status.Phase).To(Equal(wmcov1.PhaseFailed))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Consistently(func() int64 { return h.Host.Stats().Commands }).WithTimeout(3*time.Second).Should(Equal(commands),
		"no command runs on a host that presents another key")

	// Deleting it cannot clean a host it does not trust; the finalizer
	// stays until the admin repins or removes it.
	g.Expect(ctrltest.Client.Delete(ctx, wi)).To(Succeed())
	g.Consistently(func() error {
		return ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, &wmcov1.WindowsInstance{})
	}).WithTimeout(2 * time.Second).Should(Succeed())
	g.Expect(h.Host.Stats().Commands).To(Equal(commands))
	wi = &wmcov1.WindowsInstance{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, wi)).To(Succeed())
	wi.Spec.HostKey = h.Host.HostKey()
	g.Expect(ctrltest.Client.Update(ctx, wi)).To(Succeed())
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

	wi := &wmcov1.WindowsInstance{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, wi)).To(Succeed())
	wi.Spec.NodeName = h.Name + "-renamed"
	g.Expect(ctrltest.Client.Update(ctx, wi)).To(Succeed())

	g.Eventually(func() bool {
		return apierrors.IsNotFound(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, &corev1.Node{}))
	}).WithTimeout(60*time.Second).Should(BeTrue(), "the old Node is deleted")
	node := ctrltest.WaitReady(t, h.Name, 90*time.Second)
	g.Expect(node.Name).To(Equal(h.Name + "-renamed"))
	g.Expect(node.Labels).To(HaveKeyWithValue(wmcov1.LabelInstance, h.Name))

	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
	ctrltest.ExpectHostClean(g, h)
}
