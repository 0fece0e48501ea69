package instance

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
)

func testPod(ns, name string, mutate ...func(*corev1.Pod)) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}}}
	for _, m := range mutate {
		m(&p)
	}
	return p
}

func ownedBy(apiVersion, kind string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.OwnerReferences = append(p.OwnerReferences, metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: "owner", Controller: ptr.To(true)})
	}
}

func TestPodsToDrain(t *testing.T) {
	terminating := func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)} }
	mirror := func(p *corev1.Pod) { p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "hash"} }
	notController := func(p *corev1.Pod) {
		p.OwnerReferences = append(p.OwnerReferences, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "ds"})
	}
	tests := []struct {
		name string
		pods []corev1.Pod
		want []string
	}{
		{name: "no pods"},
		{name: "bare and replicated pods are drained, sorted",
			pods: []corev1.Pod{testPod("b", "web", ownedBy("apps/v1", "ReplicaSet")), testPod("a", "job"), testPod("a", "db", ownedBy("apps/v1", "StatefulSet"))},
			want: []string{"a/db", "a/job", "b/web"}},
		{name: "DaemonSet pods stay",
			pods: []corev1.Pod{testPod("kube-system", "proxy", ownedBy("apps/v1", "DaemonSet")), testPod("a", "web")},
			want: []string{"a/web"}},
		{name: "a DaemonSet kind of another group is not a DaemonSet",
			pods: []corev1.Pod{testPod("a", "x", ownedBy("example.com/v1", "DaemonSet"))},
			want: []string{"a/x"}},
		{name: "an owner that is not the controller does not count",
			pods: []corev1.Pod{testPod("a", "x", notController)},
			want: []string{"a/x"}},
		{name: "mirror pods stay",
			pods: []corev1.Pod{testPod("kube-system", "static", mirror)},
		},
		{name: "terminating pods count until gone",
			pods: []corev1.Pod{testPod("a", "leaving", terminating)},
			want: []string{"a/leaving"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var got []string
			for _, p := range podsToDrain(tt.pods) {
				got = append(got, podKey(&p))
			}
			g.Expect(got).To(Equal(tt.want))
		})
	}
}

// On a Node whose kubelet stopped reporting (Ready Unknown), a pod being
// deleted past its grace period is not waited for: nothing will finish
// it. Anywhere else, and within the grace period, every pod counts.
func TestSplitStranded(t *testing.T) {
	now := time.Date(2026, 12, 5, 14, 0, 0, 0, time.UTC)
	deleting := func(at time.Time) func(*corev1.Pod) {
		return func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: at} }
	}
	pods := []corev1.Pod{
		testPod("a", "running"),
		testPod("a", "past", deleting(now.Add(-time.Second))),
		testPod("a", "due", deleting(now)),
		testPod("a", "within", deleting(now.Add(time.Second))),
	}
	keys := func(ps []corev1.Pod) []string {
		var out []string
		for i := range ps {
			out = append(out, podKey(&ps[i]))
		}
		return out
	}
	g := NewWithT(t)
	left, stranded := splitStranded(pods, true, now)
	g.Expect(keys(left)).To(Equal([]string{"a/running", "a/within"}))
	g.Expect(keys(stranded)).To(Equal([]string{"a/past", "a/due"}))
	left, stranded = splitStranded(pods, false, now)
	g.Expect(keys(left)).To(Equal([]string{"a/running", "a/past", "a/due", "a/within"}), "a kubelet that reports finishes them")
	g.Expect(stranded).To(BeEmpty())

	node := func(conds ...corev1.NodeCondition) *corev1.Node {
		return &corev1.Node{Status: corev1.NodeStatus{Conditions: conds}}
	}
	for _, tc := range []struct {
		name string
		node *corev1.Node
		want bool
	}{
		{"Ready", node(corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue}), false},
		{"NotReady: the kubelet reports", node(corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionFalse}), false},
		{"Unknown: no heartbeat", node(corev1.NodeCondition{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionUnknown},
			corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}), true},
		{"no Ready condition yet", node(), false},
	} {
		g.Expect(nodeUnreachable(tc.node)).To(Equal(tc.want), tc.name)
	}
}

func TestCoveringBudgets(t *testing.T) {
	pdb := func(ns, name string, sel *metav1.LabelSelector) policyv1.PodDisruptionBudget {
		return policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: policyv1.PodDisruptionBudgetSpec{Selector: sel}}
	}
	web := testPod("shop", "web")
	tests := []struct {
		name string
		pdbs []policyv1.PodDisruptionBudget
		want []string
	}{
		{name: "none"},
		{name: "matching labels",
			pdbs: []policyv1.PodDisruptionBudget{pdb("shop", "web-pdb", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}})},
			want: []string{"shop/web-pdb"}},
		{name: "other labels",
			pdbs: []policyv1.PodDisruptionBudget{pdb("shop", "db-pdb", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}})}},
		{name: "match expressions",
			pdbs: []policyv1.PodDisruptionBudget{pdb("shop", "expr", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "api"}}}})},
			want: []string{"shop/expr"}},
		{name: "an empty selector selects every pod of the namespace",
			pdbs: []policyv1.PodDisruptionBudget{pdb("shop", "all", &metav1.LabelSelector{})},
			want: []string{"shop/all"}},
		{name: "a null selector selects none",
			pdbs: []policyv1.PodDisruptionBudget{pdb("shop", "null", nil)}},
		{name: "another namespace's budget does not cover the pod",
			pdbs: []policyv1.PodDisruptionBudget{pdb("other", "web-pdb", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}})}},
		{name: "an invalid selector matches nothing",
			pdbs: []policyv1.PodDisruptionBudget{pdb("shop", "bad", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Bogus"}}})}},
		{name: "several, sorted",
			pdbs: []policyv1.PodDisruptionBudget{pdb("shop", "z", &metav1.LabelSelector{}), pdb("shop", "a", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}})},
			want: []string{"shop/a", "shop/z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			NewWithT(t).Expect(coveringBudgets(&web, tt.pdbs)).To(Equal(tt.want))
		})
	}
}

func TestEvictionRefusal(t *testing.T) {
	g := NewWithT(t)
	budget := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
	budget.ErrStatus.Details.Causes = append(budget.ErrStatus.Details.Causes, metav1.StatusCause{
		Type: policyv1.DisruptionBudgetCause, Message: "The disruption budget web-pdb needs 1 healthy pods and has 1 currently",
	})
	g.Expect(evictionRefusal(budget)).To(Equal("The disruption budget web-pdb needs 1 healthy pods and has 1 currently"))
	g.Expect(evictionRefusal(fmt.Errorf("evict: %w", budget))).To(Equal("The disruption budget web-pdb needs 1 healthy pods and has 1 currently"), "wrapped")
	throttled := apierrors.NewTooManyRequests("too many requests, retry later", 1)
	g.Expect(evictionRefusal(throttled)).To(Equal("too many requests, retry later"))
	g.Expect(evictionRefusal(apierrors.NewGenericServerResponse(http.StatusInternalServerError, "create", policyv1.Resource("evictions"), "web", "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.", 0, true))).
		To(ContainSubstring("more than one PodDisruptionBudget"))
}

func TestDrainProgress(t *testing.T) {
	many := []string{"ns/p1", "ns/p2", "ns/p3", "ns/p4", "ns/p5", "ns/p6", "ns/p7 (terminating)"}
	blockedWeb := evictionBlock{pod: "shop/web", budgets: []string{"shop/web-pdb"}, message: "The disruption budget web-pdb needs 1 healthy pods and has 1 currently"}
	tests := []struct {
		name        string
		p           drainProgress
		reason      string
		message     string
		requeue     time.Duration
		notContains string
	}{
		{name: "drained",
			p:      drainProgress{node: "win-1", timeout: time.Minute},
			reason: ReasonDrained, message: "Node win-1 has no pods left to evict"},
		{name: "in progress",
			p:      drainProgress{node: "win-1", left: []string{"a/x", "b/y (terminating)"}, elapsed: 4 * time.Second, timeout: 10 * time.Minute},
			reason: ReasonDrainInProgress, message: "draining Node win-1 for 4s: 2 pods left: a/x, b/y (terminating)", requeue: drainRequeue},
		{name: "first five pods named",
			p:      drainProgress{node: "win-1", left: many, timeout: 10 * time.Minute},
			reason: ReasonDrainInProgress, message: "draining Node win-1 for 0s: 7 pods left: ns/p1, ns/p2, ns/p3, ns/p4, ns/p5 and 2 more", requeue: drainRequeue,
			notContains: "p6"},
		{name: "blocked by a budget",
			p:      drainProgress{node: "win-1", left: []string{"shop/web"}, blocked: []evictionBlock{blockedWeb}, elapsed: time.Minute, timeout: 10 * time.Minute},
			reason: ReasonDrainBlockedByPDB,
			message: "draining Node win-1 for 1m0s: 1 pod left: shop/web; eviction refused: shop/web by PodDisruptionBudget shop/web-pdb " +
				"(The disruption budget web-pdb needs 1 healthy pods and has 1 currently)",
			requeue: drainRequeue},
		{name: "several budgets",
			p: drainProgress{node: "n", left: []string{"shop/web"}, blocked: []evictionBlock{{pod: "shop/web", budgets: []string{"shop/a", "shop/b"}, message: "more than one"}},
				timeout: time.Minute},
			reason: ReasonDrainBlockedByPDB, message: "draining Node n for 0s: 1 pod left: shop/web; eviction refused: shop/web by PodDisruptionBudgets shop/a, shop/b (more than one)",
			requeue: drainRequeue},
		{name: "refused without a budget",
			p:      drainProgress{node: "n", left: []string{"a/x"}, blocked: []evictionBlock{{pod: "a/x", message: "forbidden"}}, timeout: time.Minute},
			reason: ReasonDrainInProgress, message: "draining Node n for 0s: 1 pod left: a/x; eviction refused: a/x (forbidden)", requeue: drainRequeue},
		{name: "the deadline is reported when it passes",
			p:      drainProgress{node: "n", left: []string{"a/x"}, elapsed: 59 * time.Second, timeout: time.Minute},
			reason: ReasonDrainInProgress, message: "draining Node n for 59s: 1 pod left: a/x", requeue: time.Second},
		{name: "timed out",
			p:      drainProgress{node: "win-1", left: []string{"shop/web"}, blocked: []evictionBlock{blockedWeb}, elapsed: 10*time.Minute + 2*time.Second, timeout: 10 * time.Minute},
			reason: ReasonDrainTimedOut,
			message: "Node win-1 not drained within 10m0s (draining for 10m2s): 1 pod left: shop/web; eviction refused: shop/web by PodDisruptionBudget shop/web-pdb " +
				"(The disruption budget web-pdb needs 1 healthy pods and has 1 currently)",
			requeue: time.Minute},
		{name: "a short deadline keeps the slow pace no faster than the normal one",
			p:      drainProgress{node: "n", left: []string{"a/x"}, elapsed: 5 * time.Second, timeout: 3 * time.Second},
			reason: ReasonDrainTimedOut, message: "Node n not drained within 3s (draining for 5s): 1 pod left: a/x", requeue: drainRequeue},
		{name: "drained but for pods stranded on an unreachable Node",
			p:      drainProgress{node: "win-1", stranded: []string{"a/x", "b/y"}, timeout: time.Minute},
			reason: ReasonDrained, message: "Node win-1 has no pods left to evict; 2 pods left terminating past their grace period on the unreachable Node, " +
				"which no kubelet will finish, and go with the Node: a/x, b/y"},
		{name: "a long deadline's slow pace is bounded",
			p:      drainProgress{node: "n", left: []string{"a/x"}, elapsed: 2 * time.Hour, timeout: time.Hour},
			reason: ReasonDrainTimedOut, message: "Node n not drained within 1h0m0s (draining for 2h0m0s): 1 pod left: a/x", requeue: maxDrainSlowRequeue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(tt.p.reason()).To(Equal(tt.reason))
			g.Expect(tt.p.message()).To(Equal(tt.message))
			if tt.notContains != "" {
				g.Expect(tt.p.message()).NotTo(ContainSubstring(tt.notContains))
			}
			if len(tt.p.left) > 0 {
				g.Expect(tt.p.requeueAfter()).To(Equal(tt.requeue))
			}
		})
	}
}

// The drain's start is the Draining condition's transition to True: it
// stays through the reasons of a drain and survives a restart (it is in
// the status); a drain that ends sets False, and the next one starts anew.
func TestSetDrainingCondition(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	wi := &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
	left := drainProgress{node: "n", left: []string{"a/x"}, timeout: time.Minute}

	g.Expect(drainStarted(wi, t0)).To(Equal(t0), "no drain yet: one starts now")
	setDrainingCondition(wi, left, drainStarted(wi, t0))
	c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionDraining)
	g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(c.Reason).To(Equal(ReasonDrainInProgress))
	g.Expect(c.ObservedGeneration).To(Equal(int64(3)))
	g.Expect(c.LastTransitionTime.Time).To(Equal(t0))

	t1 := t0.Add(90 * time.Second)
	started := drainStarted(wi, t1)
	g.Expect(started).To(Equal(t0), "the drain under way started at t0")
	blocked := left
	blocked.elapsed = t1.Sub(started)
	setDrainingCondition(wi, blocked, started)
	c = meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionDraining)
	g.Expect(c.Reason).To(Equal(ReasonDrainTimedOut))
	g.Expect(c.LastTransitionTime.Time).To(Equal(t0), "a change of reason keeps the start")

	t2 := t1.Add(time.Second)
	setDrainingCondition(wi, drainProgress{node: "n", timeout: time.Minute}, t2)
	c = meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionDraining)
	g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(c.Reason).To(Equal(ReasonDrained))
	g.Expect(c.LastTransitionTime.Time).To(Equal(t2))

	t3 := t2.Add(time.Hour)
	g.Expect(drainStarted(wi, t3)).To(Equal(t3), "after a drain ended, the next starts anew")
	setDrainingCondition(wi, drainProgress{node: "n", timeout: time.Minute}, t3)
	g.Expect(meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionDraining).LastTransitionTime.Time).To(Equal(t2), "drained again: no transition")
}
