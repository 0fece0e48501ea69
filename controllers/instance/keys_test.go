package instance_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

func newSSHKey(t *testing.T) winsim.UserKey {
	t.Helper()
	k, err := winsim.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keySecret creates a credentials Secret holding key, deleted when the
// test ends, and returns its reference.
func keySecret(t *testing.T, name string, key winsim.UserKey) wmcov1.SecretKeyReference {
	t.Helper()
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ctrltest.Namespace, Name: name},
		Data: map[string][]byte{"id": key.PEM}}
	NewWithT(t).Expect(ctrltest.Client.Create(t.Context(), sec)).To(Succeed())
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), sec) })
	return wmcov1.SecretKeyReference{Namespace: ctrltest.Namespace, Name: name, Key: "id"}
}

// setSecretKey replaces the key in the credentials Secret.
func setSecretKey(t *testing.T, ref wmcov1.SecretKeyReference, key winsim.UserKey) {
	t.Helper()
	g := NewWithT(t)
	sec := &corev1.Secret{}
	g.Expect(ctrltest.Client.Get(t.Context(), client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, sec)).To(Succeed())
	sec.Data[ref.Key] = key.PEM
	g.Expect(ctrltest.Client.Update(t.Context(), sec)).To(Succeed())
}

// login dials the host as Administrator with key, as an admin would.
func login(ctx context.Context, h *ctrltest.SimHost, key winsim.UserKey) error {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := (&remote.SSHDialer{}).Dial(dctx, remote.Target{
		Address: h.IP, Port: h.Host.Port(), Username: "Administrator", PrivateKey: key.PEM, HostKey: h.Host.HostKey(),
	})
	if err == nil {
		_ = s.Close()
	}
	return err
}

// notReadyRecorder watches Nodes and records every moment one of names is
// not Ready.
type notReadyRecorder struct {
	mu       sync.Mutex
	events   int
	notReady []string
}

func watchNodesReady(t *testing.T, names []string) (*notReadyRecorder, func()) {
	t.Helper()
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(t.Context())
	list, err := ctrltest.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	rec := &notReadyRecorder{}
	check := func(n *corev1.Node) {
		if !slices.Contains(names, n.Name) {
			return
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.events++
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
				rec.notReady = append(rec.notReady, n.Name+" "+string(c.Status)+" at resourceVersion "+n.ResourceVersion)
			}
		}
	}
	for i := range list.Items {
		check(&list.Items[i])
	}
	w, err := ctrltest.Clientset.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	g.Expect(err).NotTo(HaveOccurred())
	done := make(chan struct{})
	var stopping atomic.Bool
	go func() {
		defer close(done)
		defer func() {
			if !stopping.Load() {
				rec.mu.Lock()
				rec.notReady = append(rec.notReady, "the watch ended early: the Nodes were not watched throughout")
				rec.mu.Unlock()
			}
		}()
		for ev := range w.ResultChan() {
			if stopping.Load() {
				continue
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				check(ev.Object.(*corev1.Node))
			case watch.Deleted:
				n := ev.Object.(*corev1.Node)
				if slices.Contains(names, n.Name) {
					rec.mu.Lock()
					rec.notReady = append(rec.notReady, n.Name+" deleted")
					rec.mu.Unlock()
				}
			case watch.Error:
				rec.mu.Lock()
				rec.notReady = append(rec.notReady, fmt.Sprintf("watch error, the Nodes were not watched throughout: %v", ev.Object))
				rec.mu.Unlock()
			}
		}
	}()
	return rec, func() {
		stopping.Store(true)
		w.Stop()
		cancel()
		<-done
	}
}

// instanceEvents are the Events regarding the instance, "Reason: note".
func instanceEvents(g Gomega, name string) []string {
	var list eventsv1.EventList
	g.Expect(ctrltest.Client.List(context.Background(), &list, client.InNamespace(metav1.NamespaceDefault))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "WindowsInstance" && e.Regarding.Name == name {
			out = append(out, e.Reason+": "+e.Note)
		}
	}
	return out
}

func getInstance(g Gomega, name string) *wmcov1.WindowsInstance {
	wi := &wmcov1.WindowsInstance{}
	g.Expect(ctrltest.Client.Get(context.Background(), client.ObjectKey{Name: name}, wi)).To(Succeed())
	return wi
}

// Replacing the key in the credentials Secret rotates every host to it
// without touching anything else: all five hosts accept only the new key
// afterwards (their admin's other keys stay), no Node is NotReady at any
// moment, and no Node is registered again.
func TestKeyRotationAcrossFiveHosts(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	const n = 5
	hosts := ctrltest.StartHosts(t, n, simagent.Options{})
	oldKey, newKey := newSSHKey(t), newSSHKey(t)
	ref := keySecret(t, "rotation-"+hosts[0].Name, oldKey)
	for _, h := range hosts {
		// The admin's own key (the suite's) stays authorized beside ours.
		h.Host.AuthorizeKey("Administrator", oldKey.PublicKey())
	}
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: n})
	var names []string
	uids := map[string]types.UID{}
	for _, h := range hosts {
		wi := ctrltest.InstanceFor(h)
		wi.Spec.CredentialsSecretRef = ref
		g.Expect(ctrltest.Client.Create(ctx, wi)).To(Succeed())
	}
	for _, h := range hosts {
		node := ctrltest.WaitReady(t, h.Name, 2*time.Minute)
		names = append(names, node.Name)
		uids[node.Name] = node.UID
		g.Expect(getInstance(g, h.Name).Status.AuthorizedKeyFingerprint).To(Equal(oldKey.Fingerprint))
	}
	g.Eventually(func(g Gomega) {
		hist := &corev1.Secret{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: instance.KeyHistorySecretName}, hist)).To(Succeed())
		g.Expect(hist.Type).To(Equal(corev1.SecretTypeOpaque))
		g.Expect(hist.Data).To(ContainElement(oldKey.PEM), "the key the hosts accept is kept")
	}).WithTimeout(10 * time.Second).Should(Succeed())

	// Service starts per host before the rotation: nothing may restart.
	starts := map[string]map[string]int{}
	for _, h := range hosts {
		svcs, err := h.Services.List(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(svcs).To(ContainElement("kubelet"))
		starts[h.Name] = map[string]int{}
		for _, name := range svcs {
			starts[h.Name][name] = h.Services.Starts(name)
		}
	}
	rec, stop := watchNodesReady(t, names)
	start := time.Now()
	setSecretKey(t, ref, newKey)
	g.Eventually(func(g Gomega) {
		for _, h := range hosts {
			wi := getInstance(g, h.Name)
			g.Expect(wi.Status.AuthorizedKeyFingerprint).To(Equal(newKey.Fingerprint), h.Name)
			g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseReady), "%s: %s", h.Name, wi.Status.Message)
		}
	}).WithTimeout(2 * time.Minute).WithPolling(250 * time.Millisecond).Should(Succeed())
	t.Logf("%d hosts rotated to %s in %s", n, newKey.Fingerprint, time.Since(start).Round(time.Millisecond))
	// Kubelets report status every 2 s: let the watch see the Nodes for
	// a few more reports, then look at what it saw.
	seen := func() int { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.events }
	atRotation := seen()
	g.Eventually(seen).WithTimeout(30*time.Second).Should(BeNumerically(">=", atRotation+n), "the watch sees the Nodes' status reports")
	stop()
	g.Expect(rec.notReady).To(BeEmpty(), "no Node was NotReady during the rotation")
	g.Expect(rec.events).To(BeNumerically(">", n), "the watch saw the Nodes throughout")

	for _, h := range hosts {
		var auth *remote.AuthError
		err := login(ctx, h, oldKey)
		g.Expect(errors.As(err, &auth)).To(BeTrue(), "%s refuses the old key: %v", h.Name, err)
		g.Expect(login(ctx, h, newKey)).To(Succeed(), "%s accepts the new key", h.Name)
		g.Expect(login(ctx, h, winsim.UserKey{PEM: ctrltest.KeyPEM})).To(Succeed(), "%s still accepts its admin's own key", h.Name)
		g.Expect(h.Host.Disk().Security(wicdapi.AdministratorsAuthorizedKeysPath)).To(Equal(wicd.AdministratorsKeysSDDL))
		node := &corev1.Node{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, node)).To(Succeed())
		g.Expect(node.UID).To(Equal(uids[h.Name]), "the Node was not registered again")
		for name, n := range starts[h.Name] {
			g.Expect(h.Services.Starts(name)).To(Equal(n), "service %s on %s was not restarted", name, h.Name)
		}
		g.Expect(instanceEvents(g, h.Name)).To(ContainElement(And(HavePrefix(instance.EventKeyRotated+": "),
			ContainSubstring(newKey.Fingerprint), ContainSubstring(oldKey.Fingerprint))))
	}
	// The old key is no longer needed by anyone: it leaves the history.
	g.Eventually(func(g Gomega) {
		hist := &corev1.Secret{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: instance.KeyHistorySecretName}, hist)).To(Succeed())
		g.Expect(hist.Data).To(ContainElement(newKey.PEM))
		g.Expect(hist.Data).NotTo(ContainElement(oldKey.PEM))
	}).WithTimeout(10 * time.Second).Should(Succeed())

	// The new key cleans the hosts.
	for _, h := range hosts {
		ctrltest.DeleteAndWait(t, h.Name, time.Minute)
		ctrltest.ExpectHostClean(g, h)
	}
}

// A host that accepts neither the Secret's new key nor its previous one is
// Stalled with a condition and an Event naming both fingerprints, while
// its Node stays Ready; once the admin puts the new key on the host, a
// touch of the Secret finishes the rotation.
func TestHostAcceptingNeitherKeyStalls(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	h := ctrltest.StartHosts(t, 1, simagent.Options{})[0]
	oldKey, newKey := newSSHKey(t), newSSHKey(t)
	ref := keySecret(t, "rotation-"+h.Name, oldKey)
	h.Host.RevokeKeys("Administrator")
	h.Host.AuthorizeKey("Administrator", oldKey.PublicKey())
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2})
	wi := ctrltest.InstanceFor(h)
	wi.Spec.CredentialsSecretRef = ref
	g.Expect(ctrltest.Client.Create(ctx, wi)).To(Succeed())
	ctrltest.WaitReady(t, h.Name, 90*time.Second)

	// Someone removed our key from the host, and the Secret gets a new
	// one the host does not know either.
	h.Host.RevokeKeys("Administrator")
	setSecretKey(t, ref, newKey)
	got := expectStalled(t, h.Name, instance.ReasonKeyRotationFailed)
	c := meta.FindStatusCondition(got.Status.Conditions, wmcov1.ConditionReachable)
	g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(c.Reason).To(Equal(instance.ReasonKeyRotationFailed))
	g.Expect(c.Message).To(And(ContainSubstring(newKey.Fingerprint), ContainSubstring(oldKey.Fingerprint),
		ContainSubstring("add the public key "+newKey.Fingerprint)))
	g.Expect(got.Status.AuthorizedKeyFingerprint).To(Equal(oldKey.Fingerprint), "the host is known to accept nothing newer")
	g.Eventually(func(g Gomega) []string { return instanceEvents(g, h.Name) }).WithTimeout(10 * time.Second).Should(
		ContainElement(And(HavePrefix(instance.ReasonKeyRotationFailed+": "), ContainSubstring(newKey.Fingerprint), ContainSubstring(oldKey.Fingerprint))))
	for _, e := range instanceEvents(g, h.Name) {
		g.Expect(e).NotTo(ContainSubstring("PRIVATE KEY"))
	}
	node := &corev1.Node{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: h.Name}, node)).To(Succeed())
	for _, nc := range node.Status.Conditions {
		if nc.Type == corev1.NodeReady {
			g.Expect(nc.Status).To(Equal(corev1.ConditionTrue), "the Node stays Ready")
		}
	}

	// The admin installs the new key by hand and touches the Secret: the
	// host accepts the current key, the previous one is removed.
	h.Host.AuthorizeKey("Administrator", oldKey.PublicKey())
	h.Host.AuthorizeKey("Administrator", newKey.PublicKey())
	sec := &corev1.Secret{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, sec)).To(Succeed())
	sec.Annotations = map[string]string{"wmco.io/test-touched": time.Now().String()}
	g.Expect(ctrltest.Client.Update(ctx, sec)).To(Succeed())
	ctrltest.WaitReady(t, h.Name, 90*time.Second)
	g.Expect(getInstance(g, h.Name).Status.AuthorizedKeyFingerprint).To(Equal(newKey.Fingerprint))
	g.Expect(login(ctx, h, oldKey)).NotTo(Succeed(), "the previous key was removed")
	lines, err := h.Host.Disk().ReadFile(wicdapi.AdministratorsAuthorizedKeysPath)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.Count(string(lines), "ssh-ed25519")).To(Equal(1))
	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
}
