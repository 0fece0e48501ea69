package instance_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// A credentialsSecretRef naming a namespace other than the operator's is
// refused before anything is read, with a Stalled condition naming the
// rule, until the WindowsNodeConfig lists that namespace; then the host
// joins with the key kept there.
func TestCredentialsOnlyFromAllowedNamespaces(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{})
	h := hosts[0]
	keys := "keys-" + h.Name
	g.Expect(ctrltest.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: keys}})).To(Succeed())
	t.Cleanup(func() {
		_ = ctrltest.Client.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: keys}})
	})
	// The key the host accepts, in the other namespace.
	own := &corev1.Secret{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: wmcov1.DefaultCredentialsSecretName}, own)).To(Succeed())
	g.Expect(ctrltest.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: keys, Name: "ssh"},
		Data:       map[string][]byte{"key": own.Data[wmcov1.DefaultCredentialsSecretKey]},
	})).To(Succeed())
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2})

	wi := ctrltest.InstanceFor(h)
	wi.Spec.CredentialsSecretRef = wmcov1.SecretKeyReference{Namespace: keys, Name: "ssh", Key: "key"}
	g.Expect(ctrltest.Client.Create(ctx, wi)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := &wmcov1.WindowsInstance{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKeyFromObject(wi), got)).To(Succeed())
		stalled := meta.FindStatusCondition(got.Status.Conditions, wmcov1.ConditionStalled)
		g.Expect(stalled).NotTo(BeNil())
		g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(stalled.Reason).To(Equal(instance.ReasonCredentialsNamespaceNotAllowed))
		g.Expect(stalled.Message).To(And(ContainSubstring("namespace "+keys), ContainSubstring("spec.credentialNamespaces")))
		g.Expect(got.Status.Phase).To(Equal(wmcov1.PhaseFailed))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Consistently(func() int64 { return h.Host.Stats().Connections }).
		WithTimeout(2*time.Second).WithPolling(250*time.Millisecond).Should(BeZero(), "the host is never contacted without a key")

	// The admin allows the namespace: the instance goes on at once.
	ctrltest.SetNodeConfig(t, func(spec *wmcov1.WindowsNodeConfigSpec) { spec.CredentialNamespaces = []string{keys} })
	ctrltest.WaitReady(t, h.Name, 90*time.Second)
	got := &wmcov1.WindowsInstance{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKeyFromObject(wi), got)).To(Succeed())
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, wmcov1.ConditionStalled)).To(BeNil())
	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
}

// A key that cannot be used and a host that offers no key login each say
// so, not that the host refused the key: an unusable key (here
// passphrase-protected) is InvalidPrivateKey before the host is
// contacted; an sshd without PubkeyAuthentication is AuthenticationFailed
// naming the setting. Both are terminal; neither message holds key
// material.
func TestUnusableKeyAndKeylessHostSayWhy(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 2, simagent.Options{})
	locked, keyless := hosts[0], hosts[1]
	keyless.Host.OfferPasswordOnly(true)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	block, err := ssh.MarshalPrivateKeyWithPassphrase(edKey, "", []byte("passphrase"))
	g.Expect(err).NotTo(HaveOccurred())
	encrypted := pem.EncodeToMemory(block)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ctrltest.Namespace, Name: "locked-key-" + locked.Name},
		Data: map[string][]byte{"key": encrypted}}
	g.Expect(ctrltest.Client.Create(ctx, sec)).To(Succeed())
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), sec) })
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2})

	wi := ctrltest.InstanceFor(locked)
	wi.Spec.CredentialsSecretRef = wmcov1.SecretKeyReference{Namespace: ctrltest.Namespace, Name: sec.Name, Key: "key"}
	g.Expect(ctrltest.Client.Create(ctx, wi)).To(Succeed())
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(keyless))).To(Succeed())

	got := expectStalled(t, locked.Name, instance.ReasonInvalidKey)
	c := meta.FindStatusCondition(got.Status.Conditions, wmcov1.ConditionReachable)
	g.Expect(c.Reason).To(Equal(instance.ReasonInvalidKey))
	g.Expect(c.Message).To(And(ContainSubstring("cannot be used"), ContainSubstring("passphrase-protected"), Not(ContainSubstring("refused"))))
	g.Expect(c.Message).NotTo(ContainSubstring(string(encrypted[40:80])))
	st := locked.Host.Stats()
	g.Expect(st.Connections+st.AuthFailures).To(BeZero(), "an unusable key never reaches the host")

	got = expectStalled(t, keyless.Name, instance.ReasonAuthenticationFailed)
	c = meta.FindStatusCondition(got.Status.Conditions, wmcov1.ConditionReachable)
	g.Expect(c.Message).To(And(ContainSubstring("offers password"), ContainSubstring("PubkeyAuthentication yes"), Not(ContainSubstring("refused the SSH key"))))

	ctrltest.DeleteAndWait(t, locked.Name, 30*time.Second)
	ctrltest.DeleteAndWait(t, keyless.Name, 30*time.Second)
}
