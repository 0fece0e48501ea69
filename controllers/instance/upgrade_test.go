package instance_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/testpayload"
	"github.com/openwmco/wmco/test/upgradewatch"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// payloads writes test payloads under one temporary directory.
type payloads struct {
	t   *testing.T
	dir string
	n   int
}

func newPayloads(t *testing.T) *payloads {
	return &payloads{t: t, dir: t.TempDir()}
}

// write writes a fresh payload of Kubernetes version kube whose files
// are size bytes each (0: one short line).
func (p *payloads) write(kube string, size int64) payload.Entry {
	p.t.Helper()
	dir := filepath.Join(p.dir, kube+"-base")
	m, err := testpayload.Write(dir, testpayload.Options{Version: kube + "-base", KubernetesVersion: kube, FileSize: size})
	if err != nil {
		p.t.Fatal(err)
	}
	return payload.Entry{Dir: dir, Manifest: m}
}

// derive is from with the files at change given new content of size
// bytes (0: testpayload's default), of Kubernetes version kube.
func (p *payloads) derive(from payload.Entry, kube string, size int64, change ...string) payload.Entry {
	p.t.Helper()
	p.n++
	dir := filepath.Join(p.dir, fmt.Sprintf("derived-%d", p.n))
	m, err := testpayload.Derive(from.Dir, dir, testpayload.DeriveOptions{Change: change, KubernetesVersion: kube, Size: size})
	if err != nil {
		p.t.Fatal(err)
	}
	return payload.Entry{Dir: dir, Manifest: m}
}

// kubelets maps each entry's kubelet binary to its version, for the
// simulated kubelet to report what is really installed.
func kubelets(entries ...payload.Entry) map[string]string {
	var ms []*payload.Manifest
	for _, e := range entries {
		ms = append(ms, e.Manifest)
	}
	return testpayload.KubeletBinaries(ms...)
}

func sha(t *testing.T, e payload.Entry, path string) string {
	f, ok := e.Manifest.File(path)
	if !ok {
		t.Fatalf("payload %s has no %s", e.Manifest.Version, path)
	}
	return f.SHA256
}

// waitOnPayload waits until the instance is Ready on payload version,
// its kubelet reporting kube.
func waitOnPayload(t *testing.T, name, version, kube string, timeout time.Duration) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		wi := getInstance(g, name)
		g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseReady), "phase %s: %s", wi.Status.Phase, wi.Status.Message)
		g.Expect(wi.Status.PayloadVersion).To(Equal(version))
		g.Expect(wi.Status.KubeletVersion).To(Equal(kube))
		g.Expect(wi.Status.Upgrade).To(BeNil())
	}).WithTimeout(timeout).WithPolling(250 * time.Millisecond).Should(Succeed())
}

// A rollback cut short (the operator stops while the agent starts the old
// containerd again) still ends with the host Ready on the old payload and
// the upgrade on record as failed: the next operator finds the rollback's
// plan applied (not in place: the apply did not finish), ends the upgrade
// once the Node is Ready, and applies the plan again. The agent service
// re-applies only at its start here, so that only the operator can.
func TestRollbackCutShortEndsOnTheOldPayload(t *testing.T) {
	good, bad, hold, hosts := joinedWithBadUpgrade(t)
	h := hosts[0]

	// The upgrade's apply starts the new containerd; the rollback's start
	// of the old one is held.
	hold.ArmAfter(1)
	restartWhenHeld(t, hold, "the rollback starts the old containerd", good, bad)
	waitUpgradeFailed(t, h.Name, bad.Manifest.Version)
	waitOnPayload(t, h.Name, good.Manifest.Version, "v1.37.2", time.Minute)
	NewWithT(t).Eventually(func() bool { return h.Services.Running("containerd") }).Should(BeTrue())
	deleteAll(t, hosts)
}

// joinedWithBadUpgrade joins a host on payload good (Kubernetes v1.37.2)
// whose upgrade, bad (v1.37.3), changes containerd and a kubelet that
// exits at once; hold gates the host's containerd starts. The agent
// service re-applies its plan only at its start.
func joinedWithBadUpgrade(t *testing.T) (good, bad payload.Entry, hold *simagent.Hold, hosts []*ctrltest.SimHost) {
	t.Helper()
	ps := newPayloads(t)
	good = ps.write("v1.37.2", 0)
	bad = ps.derive(good, "v1.37.3", 0, payload.KubeletPath, payload.ContainerdPath)
	hold = simagent.NewHold()
	hosts = ctrltest.StartHosts(t, 1, simagent.Options{
		KubeletBinaries:  kubelets(good, bad),
		FailingBinaries:  map[string]string{sha(t, bad, payload.KubeletPath): "The process terminated unexpectedly."},
		AgentRunInterval: time.Hour,
		StartGates:       map[string]func(context.Context) error{"containerd.exe": hold.Gate},
	})
	joinOn(t, hosts[0], good, "v1.37.2", "v1.37.3")
	return good, bad, hold, hosts
}

// restartWhenHeld starts an operator shipping good and bad, stops it once
// hold holds a start (what), and starts another that stays.
func restartWhenHeld(t *testing.T, hold *simagent.Hold, what string, good, bad payload.Entry) {
	t.Helper()
	opts := ctrltest.OperatorOptions{Payloads: payload.NewCatalog(good, bad), ServerVersion: core.StaticVersion("v1.37.3")}
	_, stop := ctrltest.StartStoppableOperator(t, opts)
	NewWithT(t).Eventually(hold.Held()).WithTimeout(time.Minute).Should(Receive(), what)
	stop()
	hold.Arm(false)
	ctrltest.StartOperator(t, opts)
}

// joinedBeforeKubeletUpgrade starts one host and joins it on a v1.37.2
// payload with an API server at v1.37.3 already; it returns the host, that
// payload and the next one, which differs by its v1.37.3 kubelet. With
// failing, the next kubelet exits as soon as it starts.
func joinedBeforeKubeletUpgrade(t *testing.T, failing bool) (h *ctrltest.SimHost, base, next payload.Entry) {
	t.Helper()
	ps := newPayloads(t)
	base = ps.write("v1.37.2", 0)
	next = ps.derive(base, "v1.37.3", 0, payload.KubeletPath)
	opts := simagent.Options{KubeletBinaries: kubelets(base, next)}
	if failing {
		opts.FailingBinaries = map[string]string{sha(t, next, payload.KubeletPath): "The process terminated unexpectedly."}
	}
	h = ctrltest.StartHosts(t, 1, opts)[0]
	joinOn(t, h, base, "v1.37.2", "v1.37.3")
	return h, base, next
}

// joinOn joins the host on payload e (its kubelet reporting kube) with an
// operator that ships only e, against an API server of version server,
// and stops that operator.
func joinOn(t *testing.T, h *ctrltest.SimHost, e payload.Entry, kube, server string) {
	t.Helper()
	_, stop := ctrltest.StartStoppableOperator(t, ctrltest.OperatorOptions{
		Payloads: payload.NewCatalog(e), ServerVersion: core.StaticVersion(server),
	})
	NewWithT(t).Expect(ctrltest.Client.Create(t.Context(), ctrltest.InstanceFor(h))).To(Succeed())
	waitOnPayload(t, h.Name, e.Manifest.Version, kube, 90*time.Second)
	stop()
}

// waitUpgradeFailed waits until the instance's upgrade to version failed
// on its kubelet and is on record as failed.
func waitUpgradeFailed(t *testing.T, name, version string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		wi := getInstance(g, name)
		c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionUpgrading)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(instance.ReasonUpgradeFailed), "%s: %s", wi.Status.Phase, wi.Status.Message)
		g.Expect(c.Message).To(And(ContainSubstring(version), ContainSubstring("kubelet")))
		g.Expect(wi.Status.FailedUpgrade).NotTo(BeNil())
		g.Expect(wi.Status.FailedUpgrade.Version).To(Equal(version))
	}).WithTimeout(2 * time.Minute).WithPolling(250 * time.Millisecond).Should(Succeed())
}

// observe follows the hosts' instances and Nodes until the test ends.
func observe(t *testing.T, hosts []*ctrltest.SimHost) *upgradewatch.Watch {
	t.Helper()
	wc, err := client.NewWithWatch(ctrltest.Cluster.Config, client.Options{Scheme: ctrltest.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range hosts {
		names = append(names, h.Name)
	}
	w := upgradewatch.Start(context.Background(), wc, ctrltest.Clientset, names...)
	t.Cleanup(func() { w.Stop() })
	return w
}

// With payloads for two Kubernetes versions, hosts land on the newest the
// API server allows; a payload newer than the API server touches no host
// and every instance names both versions.
func TestPayloadSelectionBySkew(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ps := newPayloads(t)
	older := ps.write("v1.36.9", 0)
	newer := ps.write("v1.37.2", 0)
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{KubeletBinaries: kubelets(older, newer)})
	_, stop := ctrltest.StartStoppableOperator(t, ctrltest.OperatorOptions{
		Payloads: payload.NewCatalog(older, newer), ServerVersion: core.StaticVersion("v1.37.2"),
	})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(hosts[0]))).To(Succeed())
	waitOnPayload(t, hosts[0].Name, newer.Manifest.Version, "v1.37.2", 90*time.Second)
	stop()

	tooNew := ps.write("v1.38.0", 0)
	fresh := ctrltest.StartHosts(t, 1, simagent.Options{})
	dialer := ctrltest.StartOperator(t, ctrltest.OperatorOptions{
		Payloads: payload.NewCatalog(tooNew), ServerVersion: core.StaticVersion("v1.37.2"),
	})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(fresh[0]))).To(Succeed())
	for _, name := range []string{fresh[0].Name, hosts[0].Name} {
		g.Eventually(func(g Gomega) {
			wi := getInstance(g, name)
			c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionPayloadCompatible)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(instance.ReasonNoPayload))
			g.Expect(c.Message).To(And(ContainSubstring("v1.37.2"), ContainSubstring("v1.38.0")))
			g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhasePending))
			g.Expect(wi.Status.Message).To(ContainSubstring("v1.38.0"))
		}).WithTimeout(30 * time.Second).Should(Succeed())
	}
	g.Consistently(dialer.Dials.Load).WithTimeout(3*time.Second).Should(BeZero(), "no host is connected to")
	_, err := fresh[0].Host.Disk().Stat(`C:\k`)
	g.Expect(err).To(HaveOccurred(), "nothing was put on the new host")
	// A deletion still cleans the hosts.
	deleteAll(t, append(hosts, fresh...))
}

// Six hosts move to a new Kubernetes version with at most maxUnavailable
// (2) cordoned and upgrading at once, also across an operator restart in
// the middle of the rollout.
func TestRollingUpgradeHoldsMaxUnavailable(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ps := newPayloads(t)
	older := ps.write("v1.36.9", 0)
	newer := ps.derive(older, "v1.37.2", 0, payload.KubeletPath, payload.KubeProxyPath)
	hosts := ctrltest.StartHosts(t, 6, simagent.Options{KubeletBinaries: kubelets(older, newer)})
	ctrltest.SetNodeConfig(t, func(spec *wmcov1.WindowsNodeConfigSpec) {
		mu := intstr.FromInt32(2)
		spec.MaxUnavailable = &mu
	})
	_, stop := ctrltest.StartStoppableOperator(t, ctrltest.OperatorOptions{
		Payloads: payload.NewCatalog(older), ServerVersion: core.StaticVersion("v1.37.2"),
	})
	for _, h := range hosts {
		g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	}
	for _, h := range hosts {
		waitOnPayload(t, h.Name, older.Manifest.Version, "v1.36.9", 2*time.Minute)
	}
	stop()

	obs := observe(t, hosts)
	// The operator is upgraded: it now ships the newer payload too.
	opts := ctrltest.OperatorOptions{Payloads: payload.NewCatalog(older, newer), ServerVersion: core.StaticVersion("v1.37.2")}
	_, stop = ctrltest.StartStoppableOperator(t, opts)
	// Mid-rollout, once some host is upgraded and others are not, the
	// operator stops and another starts.
	g.Eventually(func(g Gomega) {
		done := 0
		for _, h := range hosts {
			if getInstance(g, h.Name).Status.PayloadVersion == newer.Manifest.Version {
				done++
			}
		}
		g.Expect(done).To(BeNumerically(">=", 1))
		g.Expect(done).To(BeNumerically("<", len(hosts)))
	}).WithTimeout(2 * time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
	stop()
	ctrltest.StartOperator(t, opts)
	for _, h := range hosts {
		waitOnPayload(t, h.Name, newer.Manifest.Version, "v1.37.2", 3*time.Minute)
	}
	seen := obs.Result()
	peak, drained := seen.Peak, seen.Cordoned
	t.Logf("peak of hosts upgrading at once: %d; drained: %d", peak, len(drained))
	g.Expect(peak).To(BeNumerically("<=", 2))
	g.Expect(peak).To(BeNumerically(">=", 1))
	for _, h := range hosts {
		wi := getInstance(g, h.Name)
		g.Expect(meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionUpgrading).Reason).To(Equal(instance.ReasonUpgradeSucceeded))
		g.Expect(meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionDraining)).To(BeNil())
		node := &corev1.Node{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: wi.Status.NodeName}, node)).To(Succeed())
		g.Expect(node.Spec.Unschedulable).To(BeFalse(), "uncordoned after the upgrade")
		g.Expect(node.Annotations).To(HaveKeyWithValue(wmcov1.AnnotationPayloadVersion, newer.Manifest.Version))
		// The new folder holds the new payload; the previous is kept.
		disk := h.Host.Disk()
		for _, f := range newer.Manifest.Files {
			data, err := disk.ReadFile(payload.HostPath(newer.Manifest.Version, f.Path))
			g.Expect(err).NotTo(HaveOccurred(), f.Path)
			sum := sha256.Sum256(data)
			g.Expect(hex.EncodeToString(sum[:])).To(Equal(f.SHA256), f.Path)
		}
		_, err := disk.Stat(payload.HostDir(older.Manifest.Version))
		g.Expect(err).NotTo(HaveOccurred(), "the previous payload's folder is kept for rollback")
	}
	g.Expect(drained).To(HaveLen(len(hosts)), "every host was drained for its kubelet upgrade")
	deleteAll(t, hosts)
}

// deleteAll deletes the hosts' instances and waits until they are gone,
// so that later tests' operators do not find them.
func deleteAll(t *testing.T, hosts []*ctrltest.SimHost) {
	t.Helper()
	for _, h := range hosts {
		ctrltest.DeleteAndWait(t, h.Name, 2*time.Minute)
	}
}

// A payload that changes only windows_exporter is applied in place: only
// that file crosses the wire, nothing is drained and the Node stays Ready.
func TestInPlaceUpgradeSendsOnlyTheChangedFile(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ps := newPayloads(t)
	const size = 4 << 20
	base := ps.write("v1.37.2", size)
	exporter := ps.derive(base, "", size, payload.WindowsExporterPath)
	hosts := ctrltest.StartHosts(t, 2, simagent.Options{KubeletBinaries: kubelets(base)})
	_, stop := ctrltest.StartStoppableOperator(t, ctrltest.OperatorOptions{
		Payloads: payload.NewCatalog(base), ServerVersion: core.StaticVersion("v1.37.2"),
	})
	for _, h := range hosts {
		g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	}
	for _, h := range hosts {
		waitOnPayload(t, h.Name, base.Manifest.Version, "v1.37.2", 2*time.Minute)
	}
	stop()
	obs := observe(t, hosts)
	before := map[string]int64{}
	for _, h := range hosts {
		before[h.Name] = h.Host.Stats().BytesReceived
	}
	kubeletStarts := map[string]int{}
	for _, h := range hosts {
		kubeletStarts[h.Name] = h.Services.Starts("kubelet")
	}
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{
		Payloads: payload.NewCatalog(exporter), ServerVersion: core.StaticVersion("v1.37.2"),
	})
	for _, h := range hosts {
		waitOnPayload(t, h.Name, exporter.Manifest.Version, "v1.37.2", 2*time.Minute)
	}
	seen := obs.Result()
	notReady, drained := seen.NotReady, seen.Cordoned
	g.Expect(notReady).To(BeEmpty(), "no Node was ever NotReady")
	g.Expect(drained).To(BeEmpty(), "nothing was cordoned or drained")
	for _, h := range hosts {
		sent := h.Host.Stats().BytesReceived - before[h.Name]
		t.Logf("host %s received %d bytes for a %d-byte windows_exporter.exe (%.3f×)", h.Name, sent, size, float64(sent)/size)
		g.Expect(float64(sent)).To(BeNumerically("<=", 1.05*size))
		g.Expect(h.Services.Starts("kubelet")).To(Equal(kubeletStarts[h.Name]), "the kubelet was not restarted")
		wi := getInstance(g, h.Name)
		g.Expect(meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionUpgrading).Reason).To(Equal(instance.ReasonUpgradeSucceeded))
	}
	deleteAll(t, hosts)
}

// A payload whose kubelet does not start is rolled back: the Node is
// Ready on the previous payload, the instance says UpgradeFailed with the
// reason, and the payload is not tried again.
func TestFailedUpgradeRollsBackWithoutRetrying(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	h, good, bad := joinedBeforeKubeletUpgrade(t, true)
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{
		Payloads: payload.NewCatalog(good, bad), ServerVersion: core.StaticVersion("v1.37.3"),
	})
	waitUpgradeFailed(t, h.Name, bad.Manifest.Version)
	waitOnPayload(t, h.Name, good.Manifest.Version, "v1.37.2", time.Minute)
	g.Expect(eventReasons(g, h.Name)).To(ContainElements("UpgradeStarted", "UpgradeFailed", "RolledBack"))

	// Every later reconcile leaves the host alone: no new attempt.
	attempts := h.Services.Starts("kubelet")
	for i := range 5 {
		wi := getInstance(g, h.Name)
		patch := client.MergeFrom(wi.DeepCopy())
		if wi.Annotations == nil {
			wi.Annotations = map[string]string{}
		}
		wi.Annotations["test.wmco.io/poke"] = strings.Repeat("x", i+1)
		g.Expect(ctrltest.Client.Patch(ctx, wi, patch)).To(Succeed())
	}
	// WMCO_NO_RETRY_WINDOW stretches the watch (e.g. 5m) for a longer look.
	window := 10 * time.Second
	if w, err := time.ParseDuration(os.Getenv("WMCO_NO_RETRY_WINDOW")); err == nil {
		window = w
	}
	t.Logf("watching for %s that the failed payload is not tried again", window)
	g.Consistently(func(g Gomega) {
		g.Expect(h.Services.Starts("kubelet")).To(Equal(attempts))
		wi := getInstance(g, h.Name)
		g.Expect(wi.Status.Upgrade).To(BeNil())
		g.Expect(wi.Status.PayloadVersion).To(Equal(good.Manifest.Version))
	}).WithTimeout(window).WithPolling(time.Second).Should(Succeed())
	g.Expect(countEvents(g, h.Name, "UpgradeStarted")).To(Equal(1), "the failed payload was tried once")
	t.Logf("kubelet starts on the host: %d before and after the window; UpgradeStarted Events: %d", attempts, countEvents(g, h.Name, "UpgradeStarted"))
	deleteAll(t, []*ctrltest.SimHost{h})
}

// An upgrade whose apply is cut short (the operator stops while the
// agent starts the new containerd, before the new kubelet) is applied
// again by the next operator, which then finds the new kubelet failing and
// rolls back: the plan the host saved as applied is not taken for one in
// place. The agent service re-applies only at its start here, so that
// only the operator can find out.
func TestUpgradeApplyCutShortIsAppliedAgain(t *testing.T) {
	g := NewWithT(t)
	good, bad, hold, hosts := joinedWithBadUpgrade(t)
	h := hosts[0]

	hold.Arm(true)
	restartWhenHeld(t, hold, "the upgrade's apply starts the new containerd", good, bad)
	waitUpgradeFailed(t, h.Name, bad.Manifest.Version)
	waitOnPayload(t, h.Name, good.Manifest.Version, "v1.37.2", time.Minute)
	g.Expect(countEvents(g, h.Name, instance.ReasonApplyFailed)).To(Equal(1), "the new kubelet's failure; the operator's stop is not the host's")
	deleteAll(t, hosts)
}

// countEvents counts the occurrences of Events with reason regarding the
// instance, repeats of a series included.
func countEvents(g Gomega, name, reason string) int {
	var list eventsv1.EventList
	g.Expect(ctrltest.Client.List(context.Background(), &list, client.InNamespace(metav1.NamespaceDefault))).To(Succeed())
	n := 0
	for _, e := range list.Items {
		if e.Regarding.Kind == "WindowsInstance" && e.Regarding.Name == name && e.Reason == reason {
			n++
			if e.Series != nil {
				n += int(e.Series.Count) - 1
			}
		}
	}
	return n
}
