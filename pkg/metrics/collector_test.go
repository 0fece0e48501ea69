package metrics

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
)

// kubeletCSRPEM is a PEM certificate request as a kubelet makes it, for
// the common name cn.
func kubeletCSRPEM(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn, Organization: []string{"system:nodes"}},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestInstanceConditions(t *testing.T) {
	g := NewWithT(t)
	items := []wmcov1.WindowsInstance{
		{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Status: wmcov1.WindowsInstanceStatus{NodeName: "win-a", Conditions: []metav1.Condition{
			{Type: wmcov1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready", Message: "never a label"},
			{Type: wmcov1.ConditionReachable, Status: metav1.ConditionTrue, Reason: "Connected"},
		}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Status: wmcov1.WindowsInstanceStatus{Conditions: []metav1.Condition{
			{Type: wmcov1.ConditionStalled, Status: metav1.ConditionTrue, Reason: "AuthenticationFailed"},
		}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, // no status yet: no series
	}
	g.Expect(instanceConditions(items)).To(ConsistOf(
		instanceCondition{instance: "a", node: "win-a", condType: "Ready", status: "True", reason: "Ready"},
		instanceCondition{instance: "a", node: "win-a", condType: "Reachable", status: "True", reason: "Connected"},
		instanceCondition{instance: "b", node: "", condType: "Stalled", status: "True", reason: "AuthenticationFailed"},
	))
}

func TestOldestPendingCSRs(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	instance := func(name string, mutate func(*wmcov1.WindowsInstance)) wmcov1.WindowsInstance {
		wi := wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: name}}
		mutate(&wi)
		return wi
	}
	items := []wmcov1.WindowsInstance{
		instance("recorded", func(wi *wmcov1.WindowsInstance) { wi.Status.NodeName = "win-rec" }),
		instance("by-spec", func(wi *wmcov1.WindowsInstance) { wi.Spec.NodeName = "win-spec" }),
		instance("by-hostname", func(wi *wmcov1.WindowsInstance) { wi.Status.Host.Hostname = "WIN-HOST" }),
		instance("claims-dup-1", func(wi *wmcov1.WindowsInstance) { wi.Spec.Hostname = "win-dup" }),
		instance("claims-dup-2", func(wi *wmcov1.WindowsInstance) { wi.Status.NodeName = "win-dup" }),
		instance("deleting", func(wi *wmcov1.WindowsInstance) {
			wi.Status.NodeName = "win-del"
			wi.DeletionTimestamp = &metav1.Time{Time: t0}
		}),
	}
	type csrCase struct {
		cn, signer string
		decided    certificatesv1.RequestConditionType
		age        time.Duration
	}
	client, serving := certificatesv1.KubeAPIServerClientKubeletSignerName, certificatesv1.KubeletServingSignerName
	tests := []struct {
		name string
		csrs []csrCase
		want map[string]time.Time
	}{
		{name: "none", want: map[string]time.Time{}},
		{
			name: "the oldest pending CSR of each instance",
			csrs: []csrCase{
				{cn: "system:node:win-rec", signer: client, age: 5 * time.Minute},
				{cn: "system:node:win-rec", signer: serving, age: 20 * time.Minute},
				{cn: "system:node:win-spec", signer: serving, age: time.Minute},
			},
			want: map[string]time.Time{"recorded": t0.Add(-20 * time.Minute), "by-spec": t0.Add(-time.Minute)},
		},
		{
			name: "matched by the hostname in lower case",
			csrs: []csrCase{{cn: "system:node:win-host", signer: client, age: time.Hour}},
			want: map[string]time.Time{"by-hostname": t0.Add(-time.Hour)},
		},
		{
			name: "approved and denied CSRs are not pending",
			csrs: []csrCase{
				{cn: "system:node:win-rec", signer: client, age: time.Hour, decided: certificatesv1.CertificateApproved},
				{cn: "system:node:win-rec", signer: serving, age: time.Hour, decided: certificatesv1.CertificateDenied},
			},
			want: map[string]time.Time{},
		},
		{
			name: "other signers, other nodes, shared names and deleted instances are not counted",
			csrs: []csrCase{
				{cn: "system:node:win-rec", signer: "example.com/other", age: time.Hour},
				{cn: "system:node:linux-1", signer: client, age: time.Hour},
				{cn: "win-rec", signer: client, age: time.Hour},
				{cn: "system:node:win-dup", signer: client, age: time.Hour},
				{cn: "system:node:win-del", signer: client, age: time.Hour},
			},
			want: map[string]time.Time{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var csrs []certificatesv1.CertificateSigningRequest
			for _, c := range tt.csrs {
				r := certificatesv1.CertificateSigningRequest{
					ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(t0.Add(-c.age))},
					Spec:       certificatesv1.CertificateSigningRequestSpec{Request: kubeletCSRPEM(t, c.cn), SignerName: c.signer},
				}
				if c.decided != "" {
					r.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: c.decided, Status: corev1.ConditionTrue}}
				}
				csrs = append(csrs, r)
			}
			g.Expect(oldestPendingCSRs(items, csrs)).To(Equal(tt.want))
		})
	}
}
