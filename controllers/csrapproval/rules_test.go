package csrapproval

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/csr"
)

func TestCSRInstanceMatching(t *testing.T) {
	wi := func(name, specNode, statusNode, hostname string, deleting bool) wmcov1.WindowsInstance {
		w := wmcov1.WindowsInstance{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       wmcov1.WindowsInstanceSpec{NodeName: specNode},
			Status:     wmcov1.WindowsInstanceStatus{NodeName: statusNode, Host: wmcov1.HostFacts{Hostname: hostname}},
		}
		if deleting {
			w.DeletionTimestamp = &metav1.Time{Time: time.Now()}
		}
		return w
	}
	items := []wmcov1.WindowsInstance{
		wi("by-status", "spec-name", "status-name", "HOST-1", false),
		wi("by-spec", "spec-only", "", "HOST-2", false),
		wi("by-hostname", "", "", "Win-Host-3", false),
		wi("deleting", "", "gone", "", true),
		wi("twin-1", "", "twin", "", false),
		wi("twin-2", "twin", "", "", false),
	}
	cases := []struct {
		node string
		want string
		err  bool
	}{
		{"status-name", "by-status", false},
		{"spec-name", "", false}, // superseded by status.nodeName
		{"spec-only", "by-spec", false},
		{"win-host-3", "by-hostname", false},
		{"Win-Host-3", "", false},
		{"host-1", "", false},
		{"status", "", false},
		{"status-name-x", "", false},
		{"gone", "", false},
		{"twin", "", true},
		{"", "", false},
	}
	for _, tc := range cases {
		g := NewWithT(t)
		got, err := csrInstanceFor(items, tc.node)
		if tc.err {
			g.Expect(err).To(HaveOccurred(), tc.node)
			continue
		}
		g.Expect(err).NotTo(HaveOccurred(), tc.node)
		if tc.want == "" {
			g.Expect(got).To(BeNil(), tc.node)
		} else {
			g.Expect(got).NotTo(BeNil(), tc.node)
			g.Expect(got.Name).To(Equal(tc.want), tc.node)
		}
	}
}

// Each CSR is counted once per verdict it gets, however often it is
// evaluated; a decision is announced again only when it changes.
func TestCSRDecisionMemoryCountsEachVerdictOnce(t *testing.T) {
	g := NewWithT(t)
	counter := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_csr_decisions_total"}, []string{"result"})
	m := newCSRDecisionMemory(counter)
	count := func(result string) float64 {
		var out dto.Metric
		g.Expect(counter.WithLabelValues(result).Write(&out)).To(Succeed())
		return out.GetCounter().GetValue()
	}
	c1 := &certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: "one", UID: types.UID("u1")}}
	pendingA := csr.Decision{Verdict: csr.Pending, Reason: "a", Instance: "w"}
	pendingB := csr.Decision{Verdict: csr.Pending, Reason: "b", Instance: "w"}

	g.Expect(m.record(c1, pendingA)).To(BeTrue())
	g.Expect(m.record(c1, pendingA)).To(BeFalse())
	g.Expect(m.record(c1, pendingA)).To(BeFalse())
	g.Expect(m.record(c1, pendingB)).To(BeTrue(), "a new reason is announced")
	g.Expect(count("pending")).To(Equal(1.0), "a new reason is not a new verdict")
	g.Expect(m.record(c1, csr.Decision{Verdict: csr.Approve})).To(BeTrue())
	g.Expect(count("approved")).To(Equal(1.0))

	// The same name for another CSR is another CSR.
	c1b := &certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: "one", UID: types.UID("u2")}}
	g.Expect(m.record(c1b, csr.Decision{Verdict: csr.Approve})).To(BeTrue())
	g.Expect(count("approved")).To(Equal(2.0))

	c2 := &certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: "two", UID: types.UID("u3")}}
	for range 5 {
		m.record(c2, csr.Decision{Verdict: csr.Ignore, Reason: "not ours"})
	}
	g.Expect(count("ignored")).To(Equal(1.0))
	m.forget("two")
	_, ok := m.lastDecision("two")
	g.Expect(ok).To(BeFalse())
	m.record(c2, csr.Decision{Verdict: csr.Deny})
	g.Expect(count("denied")).To(Equal(1.0))
	g.Expect(count("pending")).To(Equal(1.0))
}

// A CSR approved or denied here counts as decided (its write is not
// repeated while the cache still shows it pending); a pending verdict,
// another CSR of the same name or a forgotten one does not.
func TestCSRDecisionMemoryDecided(t *testing.T) {
	g := NewWithT(t)
	m := newCSRDecisionMemory(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_csr_decided_total"}, []string{"result"}))
	c := &certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: "one", UID: types.UID("u1")}}
	g.Expect(m.decided(c)).To(BeFalse())
	m.record(c, csr.Decision{Verdict: csr.Pending, Reason: "no Node yet"})
	g.Expect(m.decided(c)).To(BeFalse(), "pending is no decision")
	m.record(c, csr.Decision{Verdict: csr.Approve})
	g.Expect(m.decided(c)).To(BeTrue())
	again := &certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: "one", UID: types.UID("u2")}}
	g.Expect(m.decided(again)).To(BeFalse(), "the same name, another CSR")
	m.forget("one")
	g.Expect(m.decided(c)).To(BeFalse())
	m.record(c, csr.Decision{Verdict: csr.Deny})
	g.Expect(m.decided(c)).To(BeTrue())
}

// The cache of Node names keeps of each Node only its name, the
// wmco.io/instance label and what the informer needs.
func TestTrimNodeMetadata(t *testing.T) {
	kind := metav1.TypeMeta{APIVersion: "v1", Kind: "Node"}
	full := metav1.ObjectMeta{
		Name: "win-1", UID: "u-1", ResourceVersion: "42", Generation: 3,
		Labels:          map[string]string{wmcov1.LabelInstance: "wi-1", "kubernetes.io/os": "windows"},
		Annotations:     map[string]string{"k8s.ovn.org/node-subnets": `{"default":["10.128.2.0/23"]}`},
		ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubelet"}},
		OwnerReferences: []metav1.OwnerReference{{Name: "m-1"}},
		Finalizers:      []string{"f"},
	}
	unlabelled := *full.DeepCopy()
	delete(unlabelled.Labels, wmcov1.LabelInstance)
	tomb := toolscache.DeletedFinalStateUnknown{Key: "win-1", Obj: &metav1.PartialObjectMetadata{TypeMeta: kind, ObjectMeta: full}}
	cases := []struct {
		name string
		in   any
		want any
	}{
		{"the operator's Node", &metav1.PartialObjectMetadata{TypeMeta: kind, ObjectMeta: full},
			&metav1.PartialObjectMetadata{TypeMeta: kind, ObjectMeta: metav1.ObjectMeta{
				Name: "win-1", UID: "u-1", ResourceVersion: "42", Labels: map[string]string{wmcov1.LabelInstance: "wi-1"},
			}}},
		{"another Node", &metav1.PartialObjectMetadata{TypeMeta: kind, ObjectMeta: unlabelled},
			&metav1.PartialObjectMetadata{TypeMeta: kind, ObjectMeta: metav1.ObjectMeta{Name: "win-1", UID: "u-1", ResourceVersion: "42"}}},
		{"a tombstone passes", tomb, tomb},
	}
	for _, tc := range cases {
		got, err := trimNodeMetadata(tc.in)
		NewWithT(t).Expect(err).NotTo(HaveOccurred(), tc.name)
		NewWithT(t).Expect(got).To(Equal(tc.want), tc.name)
	}
}
