package csrapproval_test

import (
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/csrapproval"
	"github.com/openwmco/wmco/pkg/bootstrap"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/csr"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/openshiftcrds"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// csrtRecorder keeps every object a watch reports as added.
type csrtRecorder[T any] struct {
	mu    sync.Mutex
	added []T
}

func (r *csrtRecorder[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.added...)
}

// csrtRecord records the objects w reports as added until the test ends.
func csrtRecord[T any](t *testing.T, w watch.Interface) *csrtRecorder[T] {
	r := &csrtRecorder[T]{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if o, ok := ev.Object.(T); ok && ev.Type == watch.Added {
				r.mu.Lock()
				r.added = append(r.added, o)
				r.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { w.Stop(); <-done })
	return r
}

// On OpenShift a simulated host joins with a token of the
// machine-config-operator's node-bootstrapper, as the cluster's own nodes
// do: the operator creates no ServiceAccount and no bootstrap-token
// Secret; the kubelet's client CSR carries the credential ID the operator
// recorded for this host and is approved; the record is deleted after the
// join, and a CSR the same token creates afterwards is denied.
func TestOpenShiftHostJoinsAsNodeBootstrapper(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hybrid := openshiftcrds.DefaultHybridOverlay
	ctrltest.OpenShift(t, openshiftcrds.OVNOptions{HybridOverlay: &hybrid})
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{})
	h := hosts[0]
	selector := metav1.ListOptions{LabelSelector: wmcov1.LabelInstance + "=" + h.Name}
	sw, err := ctrltest.Clientset.CoreV1().Secrets(ctrltest.Namespace).Watch(ctx, selector)
	g.Expect(err).NotTo(HaveOccurred())
	secrets := csrtRecord[*corev1.Secret](t, sw)
	aw, err := ctrltest.Clientset.CoreV1().ServiceAccounts(ctrltest.Namespace).Watch(ctx, selector)
	g.Expect(err).NotTo(HaveOccurred())
	serviceAccounts := csrtRecord[*corev1.ServiceAccount](t, aw)

	ctrltest.StartOperator(t, ctrltest.OperatorOptions{Platform: cluster.OpenShift})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	node := ctrltest.WaitReady(t, h.Name, 90*time.Second)

	// One token was kept for the host, with its credential ID.
	recs := secrets.all()
	g.Expect(recs).To(HaveLen(1))
	g.Expect(recs[0].Type).To(Equal(bootstrap.SecretType))
	credentialID := recs[0].Annotations[bootstrap.AnnotationCredentialID]
	g.Expect(credentialID).To(HavePrefix("JTI="))
	token := string(recs[0].Data["token"])
	g.Expect(bootstrap.CredentialID(token, csrtNodeBootstrapperUser)).To(Equal(credentialID))

	// The kubelet's bootstrap CSR came from the node-bootstrapper with that
	// credential ID and was approved by the operator.
	var list certificatesv1.CertificateSigningRequestList
	g.Expect(ctrltest.Client.List(ctx, &list)).To(Succeed())
	var bootstrapCSRs []certificatesv1.CertificateSigningRequest
	for _, c := range list.Items {
		names, err := ctrltest.CSRNamesNode(&c, node.Name)
		g.Expect(err).NotTo(HaveOccurred())
		if names && c.Spec.SignerName == csrtClientSigner && c.Spec.Username != csr.NodeUserPrefix+node.Name {
			bootstrapCSRs = append(bootstrapCSRs, c)
		}
	}
	g.Expect(bootstrapCSRs).To(HaveLen(1))
	bc := bootstrapCSRs[0]
	g.Expect(bc.Spec.Username).To(Equal(csrtNodeBootstrapperUser))
	g.Expect(bc.Spec.Extra).To(HaveKeyWithValue(csr.CredentialIDKey, certificatesv1.ExtraValue{credentialID}))
	approved := csrtCondition(&bc, certificatesv1.CertificateApproved)
	g.Expect(approved).NotTo(BeNil())
	g.Expect(approved.Reason).To(Equal(csrapproval.CSRConditionReasonApproved))

	// No identity of the operator's own and no bootstrap-token Secret.
	g.Expect(serviceAccounts.all()).To(BeEmpty(), "no ServiceAccount was created for the host")
	var bootstrapTokens corev1.SecretList
	g.Expect(ctrltest.Client.List(ctx, &bootstrapTokens, client.MatchingFields{"type": string(corev1.SecretTypeBootstrapToken)})).To(Succeed())
	g.Expect(bootstrapTokens.Items).To(BeEmpty(), "no Secret of type %s anywhere", corev1.SecretTypeBootstrapToken)

	// Revoked after the join: the record is gone, and a CSR the host's
	// token creates now is refused.
	g.Eventually(func(g Gomega) {
		var l corev1.SecretList
		g.Expect(ctrltest.Client.List(ctx, &l, client.InNamespace(ctrltest.Namespace), client.MatchingLabels{wmcov1.LabelInstance: h.Name})).To(Succeed())
		g.Expect(l.Items).To(BeEmpty())
	}).WithTimeout(10 * time.Second).Should(Succeed())
	p := "csrt-" + csrtSuffix(t) + "-"
	late := csrtCreateCSR(t, csrtBootstrapClient(t, token), p+"after-join", csrtClientSigner, csrtClientUsages, csrtPEM(t, csrtNodeSubject(node.Name)))
	g.Eventually(func(g Gomega) {
		got := &certificatesv1.CertificateSigningRequest{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKeyFromObject(late), got)).To(Succeed())
		denied := csrtCondition(got, certificatesv1.CertificateDenied)
		g.Expect(denied).NotTo(BeNil())
		g.Expect(denied.Message).To(ContainSubstring("is neither the bootstrap identity issued for instance " + h.Name))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
	ctrltest.ExpectHostClean(g, h)
}

// csrtNodeBootstrapperUser is the user OpenShift's nodes bootstrap as.
var csrtNodeBootstrapperUser = bootstrap.Username(openshiftcrds.MCONamespace, openshiftcrds.NodeBootstrapper)
