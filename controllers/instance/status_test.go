package instance

import (
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
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

func TestSummarize(t *testing.T) {
	ok := outcome{ok: true, reason: "OK"}
	cases := []struct {
		name     string
		paused   bool
		deleting bool
		conds    map[string]outcome
		phase    wmcov1.InstancePhase
		ready    metav1.ConditionStatus
		readyWhy string
		wantMsg  string
	}{
		{name: "nothing observed", conds: nil, phase: wmcov1.PhaseConnecting, ready: metav1.ConditionFalse, readyWhy: ReasonNotObserved},
		{name: "unreachable", conds: map[string]outcome{wmcov1.ConditionReachable: {reason: ReasonUnreachable, message: "refused"}},
			phase: wmcov1.PhaseConnecting, ready: metav1.ConditionFalse, readyWhy: ReasonUnreachable, wantMsg: "refused"},
		{name: "bad key is terminal", conds: map[string]outcome{wmcov1.ConditionReachable: {reason: ReasonAuthenticationFailed, message: "refused key"}},
			phase: wmcov1.PhaseFailed, ready: metav1.ConditionFalse, readyWhy: ReasonAuthenticationFailed},
		{name: "unsupported OS is terminal", conds: map[string]outcome{wmcov1.ConditionReachable: ok,
			wmcov1.ConditionPreflightPassed: {reason: wicdapi.ReasonUnsupported, message: "build 14393"}},
			phase: wmcov1.PhaseFailed, ready: metav1.ConditionFalse, readyWhy: wicdapi.ReasonUnsupported},
		{name: "low disk waits", conds: map[string]outcome{wmcov1.ConditionReachable: ok,
			wmcov1.ConditionPreflightPassed: {reason: wicdapi.ReasonLowDisk, message: "2 GiB free"}},
			phase: wmcov1.PhasePreflight, ready: metav1.ConditionFalse, readyWhy: wicdapi.ReasonLowDisk},
		{name: "uploading", conds: map[string]outcome{wmcov1.ConditionReachable: ok, wmcov1.ConditionPreflightPassed: ok,
			wmcov1.ConditionConfigured: {reason: ReasonPayloadTransfer}}, phase: wmcov1.PhaseProvisioning, ready: metav1.ConditionFalse},
		{name: "applying", conds: map[string]outcome{wmcov1.ConditionReachable: ok, wmcov1.ConditionPreflightPassed: ok,
			wmcov1.ConditionConfigured: {reason: ReasonApplyFailed}}, phase: wmcov1.PhaseConfiguring, ready: metav1.ConditionFalse},
		{name: "waiting for node", conds: map[string]outcome{wmcov1.ConditionReachable: ok, wmcov1.ConditionPreflightPassed: ok,
			wmcov1.ConditionConfigured: ok, wmcov1.ConditionNodeReady: {reason: ReasonNodeNotFound}}, phase: wmcov1.PhaseWaitingForNode, ready: metav1.ConditionFalse},
		{name: "ready", conds: map[string]outcome{wmcov1.ConditionReachable: ok, wmcov1.ConditionPreflightPassed: ok,
			wmcov1.ConditionConfigured: ok, wmcov1.ConditionNodeReady: ok}, phase: wmcov1.PhaseReady, ready: metav1.ConditionTrue, readyWhy: ReasonReady},
		{name: "paused wins", paused: true, conds: map[string]outcome{wmcov1.ConditionReachable: {reason: ReasonUnreachable}},
			phase: wmcov1.PhasePaused, ready: metav1.ConditionFalse, readyWhy: ReasonPaused},
		{name: "deleting wins", deleting: true, paused: true, phase: wmcov1.PhaseDeprovisioning, ready: metav1.ConditionFalse, readyWhy: ReasonDeleting},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			wi := &wmcov1.WindowsInstance{Spec: wmcov1.WindowsInstanceSpec{Paused: c.paused}}
			for typ, o := range c.conds {
				setCondition(wi, typ, o)
			}
			summarize(wi, c.deleting)
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
		})
	}
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
}
