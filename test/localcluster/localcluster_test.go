package localcluster_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/openwmco/wmco/test/localcluster"
)

var cluster *localcluster.Cluster

func TestMain(m *testing.M) {
	start := time.Now()
	c, err := localcluster.Start(context.Background(), localcluster.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start local control plane:", err)
		os.Exit(1)
	}
	fmt.Printf("local control plane up in %s at %s\n", time.Since(start).Round(time.Millisecond), c.Host)
	cluster = c
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop local control plane:", err)
	}
	os.Exit(code)
}

func clientset(t *testing.T, cfg *rest.Config) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// csrPEM returns a PEM certificate request for the given subject.
func csrPEM(t *testing.T, cn string, orgs ...string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn, Organization: orgs},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func kubeletClientCSR(t *testing.T, name, node string) *certificatesv1.CertificateSigningRequest {
	return &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    csrPEM(t, "system:node:"+node, "system:nodes"),
			SignerName: certificatesv1.KubeAPIServerClientKubeletSignerName,
			Usages: []certificatesv1.KeyUsage{
				certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageClientAuth,
			},
		},
	}
}

func TestServerReportsPinnedVersion(t *testing.T) {
	g := NewWithT(t)
	v, err := clientset(t, cluster.Config).Discovery().ServerVersion()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(v.GitVersion).To(Equal(localcluster.DefaultKubernetesVersion))
}

// An approved kubelet client CSR is issued by kube-controller-manager's
// csrsigning controller with the cluster CA.
func TestApprovedKubeletCSRIsSignedByControllerManager(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	cs := clientset(t, cluster.Config)

	created, err := cs.CertificatesV1().CertificateSigningRequests().Create(ctx, kubeletClientCSR(t, "csr-approved", "signed-node"), metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	created.Status.Conditions = append(created.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue,
		Reason: "TestApproval", Message: "approved by the test",
	})
	_, err = cs.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, created.Name, created, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	var issued []byte
	g.Eventually(func(g Gomega) {
		got, err := cs.CertificatesV1().CertificateSigningRequests().Get(ctx, created.Name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got.Status.Certificate).NotTo(BeEmpty())
		issued = got.Status.Certificate
	}).WithTimeout(30 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())

	block, _ := pem.Decode(issued)
	g.Expect(block).NotTo(BeNil())
	cert, err := x509.ParseCertificate(block.Bytes)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cert.Subject.CommonName).To(Equal("system:node:signed-node"))
	g.Expect(cert.Subject.Organization).To(Equal([]string{"system:nodes"}))

	roots := x509.NewCertPool()
	g.Expect(roots.AppendCertsFromPEM(cluster.CACert)).To(BeTrue())
	_, err = cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	g.Expect(err).NotTo(HaveOccurred(), "certificate must chain to the cluster CA")
}

// A pending CSR stays unsigned: nothing in the plane approves on its own.
func TestUnapprovedCSRStaysPending(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	cs := clientset(t, cluster.Config)
	_, err := cs.CertificatesV1().CertificateSigningRequests().Create(ctx, kubeletClientCSR(t, "csr-pending", "pending-node"), metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Consistently(func(g Gomega) {
		got, err := cs.CertificatesV1().CertificateSigningRequests().Get(ctx, "csr-pending", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got.Status.Conditions).To(BeEmpty())
		g.Expect(got.Status.Certificate).To(BeEmpty())
	}).WithTimeout(2 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}

// A bootstrap token Secret authenticates as system:bootstrap:<id> and, bound
// to system:node-bootstrapper, may create a CSR but nothing else.
func TestBootstrapTokenCanCreateCSR(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	cs := clientset(t, cluster.Config)

	const tokenID, tokenSecret = "abcdef", "0123456789abcdef"
	_, err := cs.CoreV1().Secrets("kube-system").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + tokenID, Namespace: "kube-system"},
		Type:       corev1.SecretTypeBootstrapToken,
		StringData: map[string]string{
			"token-id":                       tokenID,
			"token-secret":                   tokenSecret,
			"usage-bootstrap-authentication": "true",
			"auth-extra-groups":              "system:bootstrappers:wmco-test",
			"expiration":                     time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "wmco-test-bootstrappers"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:node-bootstrapper"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:bootstrappers:wmco-test"}},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	bootCfg := &rest.Config{
		Host:            cluster.Host,
		TLSClientConfig: rest.TLSClientConfig{CAData: cluster.CACert},
		BearerToken:     tokenID + "." + tokenSecret,
	}
	boot := clientset(t, bootCfg)

	var created *certificatesv1.CertificateSigningRequest
	g.Eventually(func() error { // the RBAC authorizer's cache picks up the new binding
		created, err = boot.CertificatesV1().CertificateSigningRequests().Create(ctx, kubeletClientCSR(t, "csr-bootstrap", "boot-node"), metav1.CreateOptions{})
		return err
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Expect(created.Spec.Username).To(Equal("system:bootstrap:" + tokenID))
	g.Expect(created.Spec.Groups).To(ContainElement("system:bootstrappers:wmco-test"))

	_, err = boot.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "a bootstrap token must not read secrets, got %v", err)

	// A wrong secret does not authenticate at all.
	bad := clientset(t, &rest.Config{Host: cluster.Host, TLSClientConfig: rest.TLSClientConfig{CAData: cluster.CACert}, BearerToken: tokenID + ".ffffffffffffffff"})
	_, err = bad.CertificatesV1().CertificateSigningRequests().Create(ctx, kubeletClientCSR(t, "csr-bad-token", "boot-node"), metav1.CreateOptions{})
	g.Expect(apierrors.IsUnauthorized(err)).To(BeTrue(), "got %v", err)
}

// The Node authorizer and NodeRestriction let a kubelet change its own Node
// and no other.
func TestNodeRestrictionForbidsChangingAnotherNode(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	admin := clientset(t, cluster.Config)
	for _, name := range []string{"a", "b"} {
		_, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}
	kubeletCfg, err := cluster.UserConfig("system:node:a", "system:nodes")
	g.Expect(err).NotTo(HaveOccurred())
	kubeletA := clientset(t, kubeletCfg)

	patch := []byte(`{"metadata":{"labels":{"example.com/touched":"yes"}}}`)
	_, err = kubeletA.CoreV1().Nodes().Patch(ctx, "a", types.MergePatchType, patch, metav1.PatchOptions{})
	g.Expect(err).NotTo(HaveOccurred(), "a kubelet may label its own Node")

	_, err = kubeletA.CoreV1().Nodes().Patch(ctx, "b", types.MergePatchType, patch, metav1.PatchOptions{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "kubelet a changing Node b must be forbidden, got %v", err)

	rolePatch := []byte(`{"metadata":{"labels":{"node-role.kubernetes.io/worker":""}}}`)
	_, err = kubeletA.CoreV1().Nodes().Patch(ctx, "a", types.MergePatchType, rolePatch, metav1.PatchOptions{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "NodeRestriction forbids a kubelet to set node-role labels, got %v", err)

	b, err := admin.CoreV1().Nodes().Get(ctx, "b", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(b.Labels).NotTo(HaveKey("example.com/touched"))
}

// Node IPAM gives each Node a pod subnet of ClusterCIDR.
func TestNodeIPAMAssignsPodCIDR(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	admin := clientset(t, cluster.Config)
	_, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "ipam-node"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		n, err := admin.CoreV1().Nodes().Get(ctx, "ipam-node", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(n.Spec.PodCIDR).To(HavePrefix("10.13"))
		g.Expect(n.Spec.PodCIDR).To(HaveSuffix("/24"))
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

// The disruption controller computes a PodDisruptionBudget's status from
// the healthy pods it covers, so evictions are refused or allowed as in a
// real cluster.
func TestDisruptionControllerComputesPDBStatus(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	admin := clientset(t, cluster.Config)
	one := intstr.FromInt32(1)
	pdb, err := admin.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "pdb-status"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: &one,
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pdb-status"}},
		},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		got, err := admin.PolicyV1().PodDisruptionBudgets("default").Get(ctx, pdb.Name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(got.Status.DesiredHealthy).To(Equal(int32(1)))
		g.Expect(got.Status.CurrentHealthy).To(BeZero())
		g.Expect(got.Status.DisruptionsAllowed).To(BeZero())
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

// The Eviction API refuses to evict a Running, Ready pod that a budget
// with no disruption allowed covers (429, naming the budget), but evicts a
// Pending one regardless: a budget protects only pods that run. Drain
// tests therefore mark their pods Running and Ready.
func TestEvictionHonoursBudgetsOfRunningPods(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	admin := clientset(t, cluster.Config)
	const ns = "default"
	one := intstr.FromInt32(1)
	_, err := admin.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "evict"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "evict"}},
		},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	pod := func(name string) *corev1.Pod {
		zero := int64(0)
		p, err := admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "evict"}},
			Spec: corev1.PodSpec{NodeName: "evict-node", TerminationGracePeriodSeconds: &zero,
				Containers: []corev1.Container{{Name: "c", Image: "pause"}}},
		}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		return p
	}
	evict := func(name string) error {
		return admin.PolicyV1().Evictions(ns).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}})
	}

	running := pod("evict-running")
	running.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	_, err = admin.CoreV1().Pods(ns).UpdateStatus(ctx, running, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		got, err := admin.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "evict", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(got.Status.CurrentHealthy).To(Equal(int32(1)))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	err = evict("evict-running")
	g.Expect(apierrors.IsTooManyRequests(err)).To(BeTrue(), "got %v", err)
	g.Expect(apierrors.ReasonForError(err)).To(Equal(metav1.StatusReasonTooManyRequests))
	status, ok := err.(apierrors.APIStatus)
	g.Expect(ok).To(BeTrue())
	g.Expect(status.Status().Details.Causes).To(ContainElement(HaveField("Message", ContainSubstring("disruption budget evict needs 1 healthy pods"))))

	pod("evict-pending")
	g.Expect(evict("evict-pending")).To(Succeed(), "a Pending pod is evicted whatever the budget")
	_, err = admin.CoreV1().Pods(ns).Get(ctx, "evict-pending", metav1.GetOptions{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "without a grace period the evicted pod is gone at once")
}
