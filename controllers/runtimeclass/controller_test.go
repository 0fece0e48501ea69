package runtimeclass_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/runtimeclass"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// The tests share one local control plane: see ctrltest.
func TestMain(m *testing.M) { os.Exit(ctrltest.Run(m)) }

// ours lists the operator's RuntimeClasses by name.
func ours(g Gomega) map[string]nodev1.RuntimeClass {
	var list nodev1.RuntimeClassList
	g.Expect(ctrltest.Client.List(context.Background(), &list, client.MatchingLabels{runtimeclass.LabelManagedBy: runtimeclass.ManagedByValue})).To(Succeed())
	out := map[string]nodev1.RuntimeClass{}
	for _, rc := range list.Items {
		out[rc.Name] = rc
	}
	return out
}

// schedulable says whether the scheduler could place pod on node as far as
// the node selector and taints go (the local control plane runs no
// scheduler).
func schedulable(pod *corev1.Pod, node *corev1.Node) bool {
	if !labels.SelectorFromSet(pod.Spec.NodeSelector).Matches(labels.Set(node.Labels)) {
		return false
	}
	for _, taint := range node.Spec.Taints {
		if taint.Effect == corev1.TaintEffectPreferNoSchedule {
			continue
		}
		if !slices.ContainsFunc(pod.Spec.Tolerations, func(tol corev1.Toleration) bool {
			return tol.ToleratesTaint(klog.Background(), &taint, false)
		}) {
			return false
		}
	}
	return true
}

// Two hosts of different builds join: one RuntimeClass per build, which
// the API server's RuntimeClass admission merges into pods that name it,
// so a windows-2022 pod fits only the 20348 Node; the WindowsNodeConfig's
// taints become the tolerations; an edit or deletion is undone; when the
// last 17763 host leaves, windows-2019 goes; an admin's RuntimeClass of a
// name the operator would use is never touched.
func TestRuntimeClassPerWindowsBuild(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	// An admin made windows-2025 by hand, as upstream WMCO's docs say.
	theirs := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "windows-2025"}, Handler: "theirs"}
	g.Expect(ctrltest.Client.Create(ctx, theirs)).To(Succeed())
	t.Cleanup(func() { _ = ctrltest.Client.Delete(ctx, theirs) })

	old := ctrltest.StartHostsOfBuild(t, 1, wicdapi.OSBuildServer2019, simagent.Options{})[0]
	cur := ctrltest.StartHostsOfBuild(t, 1, wicdapi.OSBuildServer2022, simagent.Options{})[0]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(old))).To(Succeed())
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(cur))).To(Succeed())
	oldNode := ctrltest.WaitReady(t, old.Name, 120*time.Second)
	curNode := ctrltest.WaitReady(t, cur.Name, 120*time.Second)
	g.Expect(oldNode.Labels).To(HaveKeyWithValue(corev1.LabelWindowsBuild, "10.0.17763"))
	g.Expect(curNode.Labels).To(HaveKeyWithValue(corev1.LabelWindowsBuild, "10.0.20348"))

	windowsTaint := corev1.Toleration{Key: "os", Operator: corev1.TolerationOpEqual, Value: "Windows", Effect: corev1.TaintEffectNoSchedule}
	g.Eventually(func(g Gomega) {
		rcs := ours(g)
		g.Expect(rcs).To(HaveLen(2))
		for name, label := range map[string]string{"windows-2019": "10.0.17763", "windows-2022": "10.0.20348"} {
			g.Expect(rcs).To(HaveKey(name))
			rc := rcs[name]
			g.Expect(rc.Handler).To(Equal(runtimeclass.Handler))
			g.Expect(rc.Scheduling.NodeSelector).To(Equal(map[string]string{"kubernetes.io/os": "windows", corev1.LabelWindowsBuild: label}))
			g.Expect(rc.Scheduling.Tolerations).To(Equal([]corev1.Toleration{windowsTaint}))
		}
	}).WithTimeout(30 * time.Second).Should(Succeed())
	// The kubelets' status reports and the operator's own writes change
	// nothing: no writes.
	versions := func(g Gomega) map[string]string {
		out := map[string]string{}
		for name, rc := range ours(g) {
			out[name] = rc.ResourceVersion
		}
		return out
	}
	steady := versions(g)
	g.Consistently(versions).WithTimeout(5 * time.Second).Should(Equal(steady))
	got := &nodev1.RuntimeClass{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: "windows-2025"}, got)).To(Succeed())
	g.Expect(got.Handler).To(Equal("theirs"))

	// The API server's RuntimeClass admission merges the scheduling into
	// the pod: each pod fits its build's Node only.
	for rc, fits := range map[string]*corev1.Node{"windows-2022": curNode, "windows-2019": oldNode} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "iis-", Namespace: "default"},
			Spec: corev1.PodSpec{
				RuntimeClassName: &rc,
				Containers:       []corev1.Container{{Name: "iis", Image: "mcr.microsoft.com/windows/servercore/iis"}},
			},
		}
		g.Expect(ctrltest.Client.Create(ctx, pod)).To(Succeed())
		t.Cleanup(func() { _ = ctrltest.Client.Delete(ctx, pod) })
		g.Expect(pod.Spec.NodeSelector).To(HaveKeyWithValue(corev1.LabelWindowsBuild, fits.Labels[corev1.LabelWindowsBuild]), rc)
		g.Expect(pod.Spec.NodeSelector).To(HaveKeyWithValue("kubernetes.io/os", "windows"), rc)
		g.Expect(pod.Spec.Tolerations).To(ContainElement(windowsTaint), rc)
		for _, n := range []*corev1.Node{oldNode, curNode} {
			// The Node as it is now: the node lifecycle controller lifts
			// its not-ready taint a moment after the instance is Ready.
			g.Eventually(func(g Gomega) {
				now := &corev1.Node{}
				g.Expect(ctrltest.Client.Get(ctx, client.ObjectKeyFromObject(n), now)).To(Succeed())
				g.Expect(schedulable(pod, now)).To(Equal(n == fits), "pod of %s on node %s (taints %v)", rc, n.Name, now.Spec.Taints)
			}).WithTimeout(30 * time.Second).Should(Succeed())
		}
	}
	// A pod that asks for another build than its RuntimeClass is refused.
	rc := "windows-2022"
	err := ctrltest.Client.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "mismatch-", Namespace: "default"},
		Spec: corev1.PodSpec{
			RuntimeClassName: &rc, NodeSelector: map[string]string{corev1.LabelWindowsBuild: "10.0.17763"},
			Containers: []corev1.Container{{Name: "c", Image: "mcr.microsoft.com/windows/nanoserver:ltsc2019"}},
		},
	})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "a conflicting node selector is refused by admission: %v", err)

	// The WindowsNodeConfig's taints become the tolerations.
	dedicated := wmcov1.NodeTaint{Key: "dedicated", Value: "windows", Effect: "NoExecute"}
	ctrltest.SetNodeConfig(t, func(s *wmcov1.WindowsNodeConfigSpec) {
		s.Taints = []wmcov1.NodeTaint{{Key: "os", Value: "Windows", Effect: "NoSchedule"}, dedicated}
	})
	g.Eventually(func(g Gomega) {
		for _, rc := range ours(g) {
			g.Expect(rc.Scheduling.Tolerations).To(Equal([]corev1.Toleration{windowsTaint,
				{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "windows", Effect: corev1.TaintEffectNoExecute}}), rc.Name)
		}
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// An edit and a deletion are undone.
	edited := ours(g)["windows-2022"]
	edited.Scheduling.NodeSelector[corev1.LabelWindowsBuild] = "10.0.17763"
	g.Expect(ctrltest.Client.Update(ctx, &edited)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(ours(g)["windows-2022"].Scheduling.NodeSelector).To(HaveKeyWithValue(corev1.LabelWindowsBuild, "10.0.20348"))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	deleted := ours(g)["windows-2019"]
	g.Expect(ctrltest.Client.Delete(ctx, &deleted)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(ours(g)).To(HaveKey("windows-2019"))
		g.Expect(ours(g)["windows-2019"].UID).NotTo(Equal(deleted.UID))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// The last 17763 host leaves: windows-2019 goes, the rest stay.
	ctrltest.DeleteAndWait(t, old.Name, 90*time.Second)
	g.Eventually(func(g Gomega) {
		g.Expect(ours(g)).To(HaveLen(1))
		g.Expect(ours(g)).To(HaveKey("windows-2022"))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: "windows-2025"}, got)).To(Succeed())
	g.Expect(got.Handler).To(Equal("theirs"), "an admin's RuntimeClass is never touched")
	ctrltest.DeleteAndWait(t, cur.Name, 90*time.Second)
	g.Eventually(func(g Gomega) { g.Expect(ours(g)).To(BeEmpty()) }).WithTimeout(30 * time.Second).Should(Succeed())
}

// The controller does its work with exactly the generated RBAC and the
// manager's Node cache limited as main limits it: a build without a
// release name gets windows-<build>; a Node the operator did not make
// gets no RuntimeClass.
func TestRuntimeClassesWithGeneratedRBAC(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	user := "runtimeclass-operator"
	ctrltest.StartManagerWithGeneratedRBAC(t, user, func(mgr ctrl.Manager) error {
		return (&runtimeclass.Reconciler{Client: mgr.GetClient()}).SetupWithManager(mgr)
	})
	mk := func(name string, labels map[string]string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		g.Expect(ctrltest.Client.Create(ctx, n)).To(Succeed())
		t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), n) })
		return n
	}
	win := mk("rbac-win", map[string]string{wmcov1.LabelInstance: "rbac-win", corev1.LabelWindowsBuild: "10.0.19041"})
	mk("rbac-other", map[string]string{corev1.LabelWindowsBuild: "10.0.22000"})
	g.Eventually(func(g Gomega) {
		rcs := ours(g)
		g.Expect(rcs).To(HaveLen(1))
		g.Expect(rcs).To(HaveKey("windows-19041"))
		g.Expect(rcs["windows-19041"].Scheduling.NodeSelector).To(HaveKeyWithValue(corev1.LabelWindowsBuild, "10.0.19041"))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(ctrltest.Client.Delete(ctx, win)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(ours(g)).To(BeEmpty()) }).WithTimeout(30 * time.Second).Should(Succeed())
}
