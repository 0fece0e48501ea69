package instance

import (
	"errors"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/hostaddr"
	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

func TestClassifyConnectError(t *testing.T) {
	cases := []struct {
		err      error
		reason   string
		terminal bool
		metric   string
	}{
		{&remote.AuthError{Address: "h:22", User: "Administrator"}, ReasonAuthenticationFailed, true, "auth"},
		{&remote.HostKeyMismatchError{Address: "h:22", Expected: "SHA256:a", Actual: "SHA256:b"}, ReasonHostKeyMismatch, true, "hostkey"},
		{&remote.UnreachableError{Address: "h:22", Err: errors.New("connection refused")}, ReasonUnreachable, false, "unreachable"},
		{errors.New("kex failed"), ReasonConnectionFailed, false, "other"},
		{&keyRotationError{User: "Administrator", Secret: "ns/key", Current: "SHA256:new", Previous: "SHA256:old", Err: &remote.AuthError{Address: "h:22", User: "Administrator"}},
			ReasonKeyRotationFailed, true, "auth"},
		{&remote.ForbiddenAddressError{Address: "169.254.169.254:22", Err: &hostaddr.ForbiddenError{Addr: "169.254.169.254", Reason: "it is link-local"}}, ReasonInvalidAddress, true, "forbidden"},
	}
	for _, c := range cases {
		g := NewWithT(t)
		o := classifyConnectError(c.err)
		g.Expect(o.reason).To(Equal(c.reason))
		g.Expect(o.terminal()).To(Equal(c.terminal))
		g.Expect(o.message).NotTo(BeEmpty())
		g.Expect(sshErrorType(c.err)).To(Equal(c.metric))
	}
}

// An authentication failure says what failed: the key in the Secret
// (unusable: InvalidPrivateKey) or the host's answer, with the dialer's
// reason; both terminal.
func TestAuthErrorMessages(t *testing.T) {
	cases := []struct {
		cause  remote.AuthCause
		reason string
		want   string
		says   []string
	}{
		{remote.AuthKeyRefused, "host rejected the public key", ReasonAuthenticationFailed,
			[]string{"the host refused the SSH key for user Administrator"}},
		{remote.AuthKeyUnusable, "private key is passphrase-protected; an unencrypted key is required", ReasonInvalidKey,
			[]string{"private key in the credentials Secret cannot be used (private key is passphrase-protected", "unencrypted"}},
		{remote.AuthPublicKeyNotOffered, "host does not offer public key authentication (offers password)", ReasonAuthenticationFailed,
			[]string{"does not let user Administrator log in with a key (host does not offer public key authentication (offers password))", "PubkeyAuthentication yes"}},
		{remote.AuthMoreMethodsRequired, "host accepted the key but requires further authentication methods: password", ReasonAuthenticationFailed,
			[]string{"accepted the SSH key for user Administrator but asks for more", "AuthenticationMethods"}},
	}
	for _, c := range cases {
		g := NewWithT(t)
		o := classifyConnectError(fmt.Errorf("connect: %w", &remote.AuthError{Address: "h:22", User: "Administrator", Cause: c.cause, Reason: c.reason}))
		g.Expect(o.reason).To(Equal(c.want), c.reason)
		g.Expect(o.terminal()).To(BeTrue(), c.reason)
		for _, s := range c.says {
			g.Expect(o.message).To(ContainSubstring(s))
		}
		if c.cause != remote.AuthKeyRefused {
			g.Expect(o.message).NotTo(ContainSubstring("refused the SSH key"), c.reason)
		}
	}
}

// The host key mismatch says the one fix that works: set spec.hostKey to
// the key the host presents (clearing it keeps status.hostKey's pin).
func TestHostKeyMismatchMessage(t *testing.T) {
	g := NewWithT(t)
	const presented = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	o := classifyConnectError(&remote.HostKeyMismatchError{Address: "h:22", Expected: "SHA256:a", Actual: "SHA256:b", ActualKey: presented})
	g.Expect(o.reason).To(Equal(ReasonHostKeyMismatch))
	g.Expect(o.message).To(ContainSubstring("set spec.hostKey to it (" + presented + ")"))
	g.Expect(o.message).To(ContainSubstring("an empty spec.hostKey keeps the key pinned in status.hostKey"))
	g.Expect(o.message).NotTo(ContainSubstring("re-learned"))
}

func TestSummarize(t *testing.T) {
	ok := outcome{ok: true, reason: "OK"}
	allOK := map[string]outcome{wmcov1.ConditionReachable: ok, wmcov1.ConditionPreflightPassed: ok,
		wmcov1.ConditionConfigured: ok, wmcov1.ConditionNodeReady: ok}
	const none = metav1.ConditionStatus("absent")
	cases := []struct {
		name        string
		paused      bool
		deleting    bool
		waitingSlot bool
		hostKey     string
		source      string
		conds       map[string]outcome
		phase       wmcov1.InstancePhase
		ready       metav1.ConditionStatus
		readyWhy    string
		wantMsg     string
		reconciling metav1.ConditionStatus
		stalled     metav1.ConditionStatus
	}{
		{name: "nothing observed", conds: nil, phase: wmcov1.PhasePending, ready: metav1.ConditionFalse, readyWhy: ReasonNotObserved,
			reconciling: metav1.ConditionTrue, stalled: none},
		{name: "waiting for a slot before anything", waitingSlot: true, phase: wmcov1.PhasePending, ready: metav1.ConditionFalse,
			readyWhy: ReasonWaitingSlot, reconciling: metav1.ConditionTrue, stalled: none},
		{name: "connecting", conds: map[string]outcome{wmcov1.ConditionReachable: {reason: ReasonConnecting, message: "connecting over SSH"}},
			phase: wmcov1.PhaseConnecting, ready: metav1.ConditionFalse, readyWhy: ReasonConnecting, reconciling: metav1.ConditionTrue, stalled: none},
		{name: "unreachable", conds: map[string]outcome{wmcov1.ConditionReachable: {reason: ReasonUnreachable, message: "refused"}},
			phase: wmcov1.PhaseConnecting, ready: metav1.ConditionFalse, readyWhy: ReasonUnreachable, wantMsg: "refused",
			reconciling: metav1.ConditionTrue, stalled: none},
		{name: "bad key is terminal", conds: map[string]outcome{wmcov1.ConditionReachable: {reason: ReasonAuthenticationFailed, message: "refused key"}},
			phase: wmcov1.PhaseFailed, ready: metav1.ConditionFalse, readyWhy: ReasonAuthenticationFailed, wantMsg: "refused key",
			reconciling: none, stalled: metav1.ConditionTrue},
		{name: "terminal wins over waiting for a slot", waitingSlot: true,
			conds: map[string]outcome{wmcov1.ConditionReachable: {reason: ReasonHostKeyMismatch, message: "other key"}},
			phase: wmcov1.PhaseFailed, ready: metav1.ConditionFalse, readyWhy: ReasonHostKeyMismatch, reconciling: none, stalled: metav1.ConditionTrue},
		{name: "unsupported OS is terminal", conds: map[string]outcome{wmcov1.ConditionReachable: ok,
			wmcov1.ConditionPreflightPassed: {reason: wicdapi.ReasonUnsupported, message: "build 14393"}},
			phase: wmcov1.PhaseFailed, ready: metav1.ConditionFalse, readyWhy: wicdapi.ReasonUnsupported, reconciling: none, stalled: metav1.ConditionTrue},
		{name: "low disk waits", conds: map[string]outcome{wmcov1.ConditionReachable: ok,
			wmcov1.ConditionPreflightPassed: {reason: wicdapi.ReasonLowDisk, message: "2 GiB free"}},
			phase: wmcov1.PhasePreflight, ready: metav1.ConditionFalse, readyWhy: wicdapi.ReasonLowDisk, reconciling: metav1.ConditionTrue, stalled: none},
		{name: "uploading", conds: map[string]outcome{wmcov1.ConditionReachable: ok, wmcov1.ConditionPreflightPassed: ok,
			wmcov1.ConditionConfigured: {reason: ReasonPayloadTransfer}}, phase: wmcov1.PhaseProvisioning, ready: metav1.ConditionFalse,
			reconciling: metav1.ConditionTrue, stalled: none},
		{name: "upload failed", conds: map[string]outcome{wmcov1.ConditionReachable: ok, wmcov1.ConditionPreflightPassed: ok,
			wmcov1.ConditionConfigured: {reason: ReasonPayloadTransferFailed, message: "disk full"}}, phase: wmcov1.PhaseProvisioning,
			ready: metav1.ConditionFalse, readyWhy: ReasonPayloadTransferFailed, wantMsg: "disk full", reconciling: metav1.ConditionTrue, stalled: none},
		{name: "applying", conds: map[string]outcome{wmcov1.ConditionReachable: ok, wmcov1.ConditionPreflightPassed: ok,
			wmcov1.ConditionConfigured: {reason: ReasonApplyingPlan}}, phase: wmcov1.PhaseConfiguring, ready: metav1.ConditionFalse,
			reconciling: metav1.ConditionTrue, stalled: none},
		{name: "apply failed", conds: map[string]outcome{wmcov1.ConditionReachable: ok, wmcov1.ConditionPreflightPassed: ok,
			wmcov1.ConditionConfigured: {reason: ReasonApplyFailed}}, phase: wmcov1.PhaseConfiguring, ready: metav1.ConditionFalse,
			reconciling: metav1.ConditionTrue, stalled: none},
		{name: "mid-way host waiting for a slot keeps its phase", waitingSlot: true, conds: map[string]outcome{wmcov1.ConditionReachable: ok,
			wmcov1.ConditionPreflightPassed: ok, wmcov1.ConditionConfigured: {reason: ReasonApplyFailed}},
			phase: wmcov1.PhaseConfiguring, ready: metav1.ConditionFalse, readyWhy: ReasonWaitingSlot, reconciling: metav1.ConditionTrue, stalled: none},
		{name: "checking the host", conds: map[string]outcome{wmcov1.ConditionReachable: ok,
			wmcov1.ConditionPreflightPassed: {reason: ReasonCheckingHost, message: "checking the host"}},
			phase: wmcov1.PhasePreflight, ready: metav1.ConditionFalse, readyWhy: ReasonCheckingHost, reconciling: metav1.ConditionTrue, stalled: none},
		{name: "joining again under a new name", conds: map[string]outcome{wmcov1.ConditionReachable: ok, wmcov1.ConditionPreflightPassed: ok,
			wmcov1.ConditionConfigured: {reason: ReasonConfigNeeded}, wmcov1.ConditionNodeReady: {reason: ReasonConfigNeeded}},
			phase: wmcov1.PhaseConfiguring, ready: metav1.ConditionFalse, readyWhy: ReasonConfigNeeded, reconciling: metav1.ConditionTrue, stalled: none},
		{name: "node not ready", conds: map[string]outcome{wmcov1.ConditionReachable: ok, wmcov1.ConditionPreflightPassed: ok,
			wmcov1.ConditionConfigured: ok, wmcov1.ConditionNodeReady: {reason: ReasonNodeNotReady}}, phase: wmcov1.PhaseWaitingForNode,
			ready: metav1.ConditionFalse, readyWhy: ReasonNodeNotReady, reconciling: metav1.ConditionTrue, stalled: none},
		{name: "a Node of that name belongs to another host", conds: map[string]outcome{wmcov1.ConditionReachable: ok, wmcov1.ConditionPreflightPassed: ok,
			wmcov1.ConditionConfigured: ok, wmcov1.ConditionNodeReady: {reason: ReasonNodeNameConflict}}, phase: wmcov1.PhaseFailed,
			ready: metav1.ConditionFalse, readyWhy: ReasonNodeNameConflict, reconciling: none, stalled: metav1.ConditionTrue},
		{name: "the agent failed", conds: map[string]outcome{wmcov1.ConditionReachable: ok,
			wmcov1.ConditionPreflightPassed: {reason: ReasonAgentFailed}}, phase: wmcov1.PhasePreflight,
			ready: metav1.ConditionFalse, readyWhy: ReasonAgentFailed, reconciling: metav1.ConditionTrue, stalled: none},
		{name: "waiting for node", conds: map[string]outcome{wmcov1.ConditionReachable: ok, wmcov1.ConditionPreflightPassed: ok,
			wmcov1.ConditionConfigured: ok, wmcov1.ConditionNodeReady: {reason: ReasonNodeNotFound}}, phase: wmcov1.PhaseWaitingForNode,
			ready: metav1.ConditionFalse, reconciling: metav1.ConditionTrue, stalled: none},
		{name: "ready", conds: allOK, phase: wmcov1.PhaseReady, ready: metav1.ConditionTrue, readyWhy: ReasonReady, reconciling: none, stalled: none},
		{name: "a Ready host waiting for a slot stays Ready", waitingSlot: true, conds: allOK, phase: wmcov1.PhaseReady,
			ready: metav1.ConditionTrue, readyWhy: ReasonReady, reconciling: none, stalled: none},
		{name: "paused wins", paused: true, conds: map[string]outcome{wmcov1.ConditionReachable: {reason: ReasonUnreachable}},
			phase: wmcov1.PhasePaused, ready: metav1.ConditionFalse, readyWhy: ReasonPaused, reconciling: none, stalled: none},
		{name: "deleting wins", deleting: true, paused: true, phase: wmcov1.PhaseDeprovisioning, ready: metav1.ConditionFalse,
			readyWhy: ReasonDeleting, reconciling: metav1.ConditionTrue, stalled: none},
		{name: "deleting, a file still held", deleting: true, conds: map[string]outcome{
			wmcov1.ConditionConfigured: {reason: ReasonCleanupFailed, message: "C:\\k\\payload\\v1\\cni\\win-overlay.exe is in use by pause.exe"}},
			phase: wmcov1.PhaseDeprovisioning, ready: metav1.ConditionFalse, readyWhy: ReasonCleanupFailed,
			wantMsg: "C:\\k\\payload\\v1\\cni\\win-overlay.exe is in use by pause.exe", reconciling: metav1.ConditionTrue, stalled: none},
		{name: "deleting, the host no longer reached", deleting: true, hostKey: "ssh-ed25519 AAAA", conds: map[string]outcome{
			wmcov1.ConditionReachable: {reason: ReasonUnreachable, message: "dial tcp 192.0.2.7:22: i/o timeout"}},
			phase: wmcov1.PhaseDeprovisioning, ready: metav1.ConditionFalse, readyWhy: ReasonUnreachable,
			wantMsg: "cannot clean the host, retried every minute: dial tcp 192.0.2.7:22: i/o timeout; to give the host up uncleaned, " +
				"annotate the instance wmco.io/abandon-host=<why> (its Node is deleted and its bootstrap credentials revoked)",
			reconciling: metav1.ConditionTrue, stalled: none},
		{name: "deleting, a Machine's host no longer reached", deleting: true, hostKey: "ssh-ed25519 AAAA", source: wmcov1.SourceMachine,
			conds: map[string]outcome{wmcov1.ConditionReachable: {reason: ReasonUnreachable, message: "dial tcp 192.0.2.7:22: i/o timeout"}},
			phase: wmcov1.PhaseDeprovisioning, ready: metav1.ConditionFalse, readyWhy: ReasonUnreachable,
			wantMsg: "cannot clean the host, retried every minute: dial tcp 192.0.2.7:22: i/o timeout; to give the host up uncleaned, " +
				"annotate the instance wmco.io/abandon-host=<why> (its Node is deleted and its bootstrap credentials revoked); " +
				"the operator does so once the host has not let it in for --machine-access-timeout, as its Machine's VM is removed anyway",
			reconciling: metav1.ConditionTrue, stalled: none},
		{name: "deleting, the host never reached: nothing to clean", deleting: true, conds: map[string]outcome{
			wmcov1.ConditionReachable: {reason: ReasonUnreachable, message: "dial tcp 192.0.2.7:22: i/o timeout"}},
			phase: wmcov1.PhaseDeprovisioning, ready: metav1.ConditionFalse, readyWhy: ReasonDeleting, reconciling: metav1.ConditionTrue, stalled: none},
		{name: "deleting, still connecting", deleting: true, hostKey: "ssh-ed25519 AAAA", conds: map[string]outcome{
			wmcov1.ConditionReachable: {reason: ReasonConnecting}},
			phase: wmcov1.PhaseDeprovisioning, ready: metav1.ConditionFalse, readyWhy: ReasonDeleting, reconciling: metav1.ConditionTrue, stalled: none},
		{name: "deleting, the drain blocked", deleting: true, conds: map[string]outcome{
			wmcov1.ConditionDraining: {ok: true, reason: ReasonDrainBlockedByPDB, message: "pod ns/web-0 left: PodDisruptionBudget ns/web"}},
			phase: wmcov1.PhaseDeprovisioning, ready: metav1.ConditionFalse, readyWhy: ReasonDrainBlockedByPDB,
			wantMsg: "pod ns/web-0 left: PodDisruptionBudget ns/web", reconciling: metav1.ConditionTrue, stalled: none},
	}
	status := func(wi *wmcov1.WindowsInstance, typ string) metav1.ConditionStatus {
		if c := meta.FindStatusCondition(wi.Status.Conditions, typ); c != nil {
			return c.Status
		}
		return none
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			wi := &wmcov1.WindowsInstance{Spec: wmcov1.WindowsInstanceSpec{Paused: c.paused}}
			if c.source != "" {
				wi.Labels = map[string]string{wmcov1.LabelSource: c.source}
			}
			wi.Status.HostKey = c.hostKey
			// Left-overs of an earlier summary are replaced.
			setCondition(wi, wmcov1.ConditionStalled, outcome{ok: true, reason: "Old"})
			setCondition(wi, wmcov1.ConditionReconciling, outcome{ok: true, reason: "Old"})
			for typ, o := range c.conds {
				setCondition(wi, typ, o)
			}
			summarize(wi, c.deleting, c.waitingSlot)
			g.Expect(wi.Status.Phase).To(Equal(c.phase))
			r := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionReady)
			g.Expect(r).NotTo(BeNil())
			g.Expect(r.Status).To(Equal(c.ready))
			if c.readyWhy != "" {
				g.Expect(r.Reason).To(Equal(c.readyWhy))
			}
			if c.wantMsg != "" {
				g.Expect(wi.Status.Message).To(Equal(c.wantMsg))
			}
			g.Expect(status(wi, wmcov1.ConditionReconciling)).To(Equal(c.reconciling), "Reconciling")
			g.Expect(status(wi, wmcov1.ConditionStalled)).To(Equal(c.stalled), "Stalled")
			if c.stalled == metav1.ConditionTrue {
				g.Expect(meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionStalled).Reason).To(Equal(r.Reason))
			}
		})
	}
}

// During an upgrade the message is the Upgrading condition's, followed by
// what holds the upgrade up: a step that failed, not one under way.
func TestSummarizeUpgradeSaysWhatHoldsItUp(t *testing.T) {
	ok := outcome{ok: true, reason: "OK", message: "ok"}
	const applying = "applying payload b (a → b)"
	for _, tc := range []struct {
		name       string
		reachable  outcome
		configured outcome
		want       string
	}{
		{"nothing", ok, ok, applying},
		{"the host unreachable", outcome{reason: ReasonUnreachable, message: "cannot reach the host's SSH server: connection refused"}, ok,
			applying + ": cannot reach the host's SSH server: connection refused"},
		{"the payload's upload failed", ok, outcome{reason: ReasonPayloadTransferFailed, message: `upload C:\k\payload\b\kubelet.exe: disk full`},
			applying + `: upload C:\k\payload\b\kubelet.exe: disk full`},
		{"the payload's upload under way", ok, outcome{reason: ReasonPayloadTransfer, message: "uploading 3 payload files (10 bytes), copying 1 on the host"},
			applying},
		{"the apply failed", ok, outcome{reason: ReasonApplyFailed, message: "start service kubelet: exit code 1067"},
			applying + ": start service kubelet: exit code 1067"},
		{"the first failed step", outcome{reason: ReasonUnreachable, message: "no route to host"}, outcome{reason: ReasonPayloadTransferFailed, message: "disk full"},
			applying + ": no route to host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			wi := &wmcov1.WindowsInstance{}
			setReachableCondition(wi, tc.reachable)
			setPreflightCondition(wi, ok)
			setConfiguredCondition(wi, tc.configured)
			setNodeReadyCondition(wi, ok)
			wi.Status.Upgrade = &wmcov1.UpgradeStatus{From: "a", To: "b", Progress: "a → b", Step: wmcov1.UpgradeStepApplying}
			setUpgradingCondition(wi, true, ReasonUpgradeApplying, applying)
			summarize(wi, false, false)
			g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseUpgrading))
			g.Expect(wi.Status.Message).To(Equal(tc.want))
		})
	}
}

// recordingSlots are slots of limit whose wake-ups wake returns, and
// forgets, in the order they came.
func recordingSlots(limit int) (s *slots, wake func() []string) {
	var woken []string
	s = newSlots(limit, func(name string) { woken = append(woken, name) })
	return s, func() []string {
		out := woken
		woken = nil
		return out
	}
}

// The slots bound the hosts worked on at once, follow a changed limit, and
// wake waiters in the order they came when slots free up, hosts finishing
// their join before hosts that have not started.
func TestSlots(t *testing.T) {
	g := NewWithT(t)
	s, wake := recordingSlots(2)
	g.Expect(s.tryAcquire("a", false)).To(BeTrue())
	g.Expect(s.tryAcquire("a", false)).To(BeTrue(), "held already")
	g.Expect(s.tryAcquire("b", false)).To(BeTrue())
	g.Expect(s.tryAcquire("c", false)).To(BeFalse())
	g.Expect(s.tryAcquire("d", false)).To(BeFalse())
	g.Expect(s.tryAcquire("c", false)).To(BeFalse(), "waits once in the queue")
	g.Expect(len(s.held)).To(Equal(2))
	g.Expect(wake()).To(BeEmpty())

	s.release("a")
	g.Expect(wake()).To(Equal([]string{"c"}), "the longest waiting first")
	g.Expect(s.tryAcquire("c", false)).To(BeTrue())

	s.setLimit(1)
	s.release("b")
	g.Expect(wake()).To(BeEmpty(), "still one held under a limit of 1")
	g.Expect(s.tryAcquire("d", false)).To(BeFalse())

	s.setLimit(3)
	g.Expect(wake()).To(Equal([]string{"d"}), "a larger limit wakes at once")
	g.Expect(s.tryAcquire("d", false)).To(BeTrue())
	g.Expect(len(s.held)).To(Equal(2))

	s.setLimit(0)
	g.Expect(s.tryAcquire("e", false)).To(BeFalse(), "a limit below 1 counts as 1")

	// Hosts finishing their join go before the ones that have not
	// started, in the order they came.
	g.Expect(s.tryAcquire("f", false)).To(BeFalse())
	g.Expect(s.tryAcquire("x", true)).To(BeFalse())
	g.Expect(s.tryAcquire("y", true)).To(BeFalse())
	g.Expect(s.tryAcquire("x", true)).To(BeFalse(), "waits once in the queue")
	s.setLimit(2)
	g.Expect(wake()).To(BeEmpty(), "two held (c, d) under a limit of 2")
	s.release("c")
	g.Expect(wake()).To(Equal([]string{"x"}))
	g.Expect(s.tryAcquire("x", true)).To(BeTrue())
	s.release("d")
	g.Expect(wake()).To(Equal([]string{"y"}))
	g.Expect(s.tryAcquire("y", true)).To(BeTrue())
	s.release("x")
	g.Expect(wake()).To(Equal([]string{"e"}))
	g.Expect(s.tryAcquire("e", false)).To(BeTrue())
	s.release("y")
	g.Expect(wake()).To(Equal([]string{"f"}))
	g.Expect(s.waiting).To(BeEmpty())
}

// An instance paused or deleted leaves the waiters: a freed slot wakes
// the next waiter instead, and a wake-up the instance got before it was
// found paused goes on to the next waiter.
func TestSlotsDropPausedAndDeleted(t *testing.T) {
	g := NewWithT(t)
	s, wake := recordingSlots(1)
	g.Expect(s.tryAcquire("a", false)).To(BeTrue())
	for _, n := range []string{"b", "c", "d", "e"} {
		g.Expect(s.tryAcquire(n, false)).To(BeFalse())
	}
	s.drop("c")
	s.drop("unknown")
	g.Expect(wake()).To(BeEmpty(), "no slot is free")

	s.release("a")
	g.Expect(wake()).To(Equal([]string{"b"}))
	// b's reconcile finds it paused: its wake-up goes on, past the
	// deleted c.
	s.drop("b")
	g.Expect(wake()).To(Equal([]string{"d"}))
	g.Expect(s.tryAcquire("d", false)).To(BeTrue())
	s.drop("d")
	g.Expect(wake()).To(BeEmpty(), "d took its slot: nothing to pass on")
	s.release("d")
	g.Expect(wake()).To(Equal([]string{"e"}))
	g.Expect(s.waiting).To(BeEmpty())
}

// Wake-ups recorded while one is pending are merged into it; answering
// the doorbell takes them all, and a later wake-up rings again.
func TestWakeups(t *testing.T) {
	g := NewWithT(t)
	w := newWakeups()
	rung := func() bool {
		select {
		case <-w.bell:
			return true
		default:
			return false
		}
	}
	g.Expect(rung()).To(BeFalse())
	w.instance("a")
	w.instance("b")
	w.instance("a")
	w.clusterChanged()
	g.Expect(rung()).To(BeTrue())
	g.Expect(rung()).To(BeFalse(), "one ring for wake-ups that came while one was pending")
	all, behind, names := w.take()
	g.Expect(all).To(BeFalse())
	g.Expect(behind).To(BeTrue())
	g.Expect(names).To(Equal([]string{"a", "b"}))

	all, behind, names = w.take()
	g.Expect(all || behind || len(names) > 0).To(BeFalse(), "taken once")

	w.everyInstance()
	g.Expect(rung()).To(BeTrue())
	all, _, _ = w.take()
	g.Expect(all).To(BeTrue())
}

func TestNodeChangedPredicate(t *testing.T) {
	g := NewWithT(t)
	base := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{"a": "1"}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
			LastHeartbeatTime: metav1.Now()}}},
	}
	p := nodeChangedPredicate()
	update := func(mutate func(n *corev1.Node)) bool {
		n := base.DeepCopy()
		mutate(n)
		return p.Update(event.UpdateEvent{ObjectOld: base, ObjectNew: n})
	}
	g.Expect(update(func(n *corev1.Node) {
		n.Status.Conditions[0].LastHeartbeatTime = metav1.NewTime(time.Now().Add(time.Minute))
	})).To(BeFalse(), "a routine status report")
	g.Expect(update(func(n *corev1.Node) { n.ResourceVersion = "9" })).To(BeFalse())
	g.Expect(update(func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionUnknown })).To(BeTrue(), "readiness changed")
	g.Expect(update(func(n *corev1.Node) { n.Labels["b"] = "2" })).To(BeTrue())
	g.Expect(update(func(n *corev1.Node) {
		n.Annotations = map[string]string{HybridOverlaySubnetAnnotation: "10.132.1.0/24"}
	})).To(BeTrue())
	g.Expect(update(func(n *corev1.Node) { n.Spec.PodCIDR = "10.132.2.0/24" })).To(BeTrue())
	g.Expect(update(func(n *corev1.Node) { n.Spec.Taints = []corev1.Taint{{Key: "x", Effect: corev1.TaintEffectNoSchedule}} })).To(BeTrue())
	g.Expect(update(func(n *corev1.Node) { n.Status.NodeInfo.KubeletVersion = "v1.37.2" })).To(BeTrue(), "an upgrade waits for the kubelet's version")
}
