package userdata_test

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	configv1 "github.com/openshift/api/config/v1"
	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	userdatactl "github.com/openwmco/wmco/controllers/userdata"
	"github.com/openwmco/wmco/pkg/platform"
	"github.com/openwmco/wmco/pkg/userdata"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/firstboot"
	"github.com/openwmco/wmco/test/winsim"
)

// The tests share one local control plane: see ctrltest.
func TestMain(m *testing.M) { os.Exit(ctrltest.Run(m)) }

// newKey is a fresh key pair: its PEM and public key.
func newKey(t *testing.T) ([]byte, ssh.PublicKey) {
	t.Helper()
	k, err := winsim.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.PEM, k.Signer.PublicKey()
}

func userDataSecret(g Gomega, ns string) *corev1.Secret {
	s := &corev1.Secret{}
	g.Expect(ctrltest.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: userdata.SecretName}, s)).To(Succeed())
	return s
}

// bootsWith says what a VM of platform p booted from the Secret in ns
// would authorise.
func bootsWith(g Gomega, p platform.Profile, ns string) []string {
	res, err := firstboot.Run(p, firstboot.ImageFor(p), userDataSecret(g, ns).Data[userdata.SecretKey])
	g.Expect(err).NotTo(HaveOccurred())
	var out []string
	for _, k := range res.AuthorizedKeys {
		out = append(out, ssh.FingerprintSHA256(k))
	}
	return out
}

func events(g Gomega, reason string) []corev1.Event {
	list, err := ctrltest.Clientset.CoreV1().Events(ctrltest.Namespace).List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.kind": "Secret", "involvedObject.name": wmcov1.DefaultCredentialsSecretName, "reason": reason}.String(),
	})
	g.Expect(err).NotTo(HaveOccurred())
	return list.Items
}

// ensureNamespace creates namespace ns unless it exists; it is left for
// later tests.
func ensureNamespace(t *testing.T, ns string) {
	t.Helper()
	if err := ctrltest.Client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// createKey creates the private key Secret of keyPEM, deleted when the
// test ends, and after that the userData Secrets the test left.
func createKey(t *testing.T, keyPEM []byte) *corev1.Secret {
	t.Helper()
	t.Cleanup(func() {
		for _, ns := range userdatactl.Namespaces {
			_ = ctrltest.Client.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: userdata.SecretName}})
		}
	})
	key := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ctrltest.Namespace, Name: wmcov1.DefaultCredentialsSecretName},
		Data:       map[string][]byte{wmcov1.DefaultCredentialsSecretKey: keyPEM},
	}
	if err := ctrltest.Client.Create(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), key) })
	return key
}

// startController runs the userData controller (AWS) as user, holding
// only the generated RBAC and caching Secrets as main does (those of the
// operator's namespace only), with the resync period resync, until the
// test ends. It returns user's configuration.
func startController(t *testing.T, user string, resync time.Duration) *rest.Config {
	t.Helper()
	ctrltest.GrantGeneratedRBAC(t, user, user, ctrltest.Namespace)
	cfg, err := ctrltest.Cluster.UserConfig(user)
	if err != nil {
		t.Fatal(err)
	}
	ctrltest.StartManagerWithCache(t, cfg, cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}: {Namespaces: map[string]cache.Config{ctrltest.Namespace: {}}},
	}}, func(mgr ctrl.Manager) error {
		return (&userdatactl.Reconciler{
			Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("wmco-userdata"),
			Namespace: ctrltest.Namespace, Platform: configv1.AWSPlatformType, Resync: resync,
		}).SetupWithManager(mgr)
	})
	return cfg
}

// The operator, holding only the generated RBAC and caching Secrets as
// main does, writes the userData Secret from the private key; rewrites it
// when the key changes (new VMs authorise the new key), and at the next
// resync when it is edited or deleted; writes it in openshift-cluster-api
// once that namespace exists; and leaves it alone when the key Secret
// holds no usable key.
func TestUserDataFollowsThePrivateKey(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ensureNamespace(t, userdata.MachineAPINamespace)
	keyPEM, pub := newKey(t)
	key := createKey(t, keyPEM)
	cfg := startController(t, "userdata-operator", time.Second)
	aws, _ := platform.Lookup(configv1.AWSPlatformType)
	want, err := userdata.Render(aws, pub)
	g.Expect(err).NotTo(HaveOccurred())

	g.Eventually(func(g Gomega) {
		s := userDataSecret(g, userdata.MachineAPINamespace)
		g.Expect(s.Data).To(Equal(map[string][]byte{userdata.SecretKey: want}))
		g.Expect(s.Annotations).To(HaveKeyWithValue(userdatactl.AnnotationKeyFingerprint, ssh.FingerprintSHA256(pub)))
		g.Expect(bootsWith(g, aws, userdata.MachineAPINamespace)).To(Equal([]string{ssh.FingerprintSHA256(pub)}))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// An edit (of the data, labels or annotations) is undone at the next
	// resync; a deletion too.
	s := userDataSecret(g, userdata.MachineAPINamespace)
	s.Data[userdata.SecretKey] = []byte("<powershell>Write-Output hacked</powershell>\n")
	s.Data["extra"] = []byte("x")
	s.Annotations[userdatactl.AnnotationKeyFingerprint] = "SHA256:other"
	s.Labels["extra"] = "x"
	g.Expect(ctrltest.Client.Update(ctx, s)).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := userDataSecret(g, userdata.MachineAPINamespace)
		g.Expect(s.Data).To(Equal(map[string][]byte{userdata.SecretKey: want}))
		g.Expect(s.Annotations).To(Equal(map[string]string{userdatactl.AnnotationKeyFingerprint: ssh.FingerprintSHA256(pub)}))
		g.Expect(s.Labels).To(Equal(map[string]string{userdatactl.LabelManagedBy: userdatactl.ManagedByValue}))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(ctrltest.Client.Delete(ctx, userDataSecret(g, userdata.MachineAPINamespace))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(userDataSecret(g, userdata.MachineAPINamespace).Data).To(Equal(map[string][]byte{userdata.SecretKey: want}))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// openshift-cluster-api appears, then the key changes: both Secrets
	// authorise the new key only.
	ensureNamespace(t, userdata.ClusterAPINamespace)
	newPEM, newPub := newKey(t)
	key.Data[wmcov1.DefaultCredentialsSecretKey] = newPEM
	g.Expect(ctrltest.Client.Update(ctx, key)).To(Succeed())
	g.Eventually(func(g Gomega) {
		for _, ns := range userdatactl.Namespaces {
			g.Expect(bootsWith(g, aws, ns)).To(Equal([]string{ssh.FingerprintSHA256(newPub)}), ns)
		}
		g.Expect(events(g, userdatactl.EventUserDataUpdated)).NotTo(BeEmpty())
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// A key Secret that holds no usable key: an Event that quotes nothing
	// of it, and the userData stays.
	key.Data[wmcov1.DefaultCredentialsSecretKey] = []byte("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
	g.Expect(ctrltest.Client.Update(ctx, key)).To(Succeed())
	g.Eventually(func(g Gomega) {
		evs := events(g, userdatactl.EventInvalidKey)
		g.Expect(evs).NotTo(BeEmpty())
		g.Expect(evs[0].Message).NotTo(ContainSubstring("bm90IGEga2V5"))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(bootsWith(g, aws, userdata.MachineAPINamespace)).To(Equal([]string{ssh.FingerprintSHA256(newPub)}))
	}).WithTimeout(2 * time.Second).Should(Succeed())

	// The operator can read no Secret of those namespaces, not even the
	// one it writes.
	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: userdata.MachineAPINamespace, Name: "not-userdata"}}
	g.Expect(ctrltest.Client.Create(ctx, other)).To(Succeed())
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), other) })
	restricted, err := client.New(cfg, client.Options{Scheme: ctrltest.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	for _, name := range []string{other.Name, userdata.SecretName} {
		err = restricted.Get(ctx, client.ObjectKey{Namespace: userdata.MachineAPINamespace, Name: name}, &corev1.Secret{})
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "get Secret %s: %v", name, err)
	}
}
