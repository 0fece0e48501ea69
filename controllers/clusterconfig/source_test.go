package clusterconfig

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/nodeconfig"
)

// The Source tells base and ProblemReading until set; listeners hear of
// real changes only; the log line names what changed but never a CA
// bundle or a proxy setting; readers get copies.
func TestSource(t *testing.T) {
	g := NewWithT(t)
	base := nodeconfig.ClusterFacts{APIServerURL: "https://flag.example.test:6443", ServiceCIDR: "10.96.0.0/12", PodNetworkCIDRs: []string{"10.244.0.0/16"}}
	s := New(base, core.Config{Namespace: "wmco-system", Platform: cluster.OpenShift})
	f, problem := s.ClusterFacts()
	g.Expect(f).To(Equal(base))
	g.Expect(problem).To(Equal(ProblemReading))

	var calls atomic.Int32
	s.OnChange(func() { calls.Add(1) })
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := funcr.New(func(prefix, args string) {
		logMu.Lock()
		defer logMu.Unlock()
		logs.WriteString(prefix + args + "\n")
	}, funcr.Options{})

	// Same facts, the problem goes: a change.
	g.Expect(s.set(log, base, "")).To(BeTrue())
	g.Expect(calls.Load()).To(Equal(int32(1)))
	// Nothing new: no call.
	g.Expect(s.set(log, cluster.CloneFacts(base), "")).To(BeFalse())
	g.Expect(calls.Load()).To(Equal(int32(1)))

	next := cluster.CloneFacts(base)
	next.Proxy = nodeconfig.Proxy{HTTPProxy: "http://user:hunter2@proxy.example.test:3128"}
	next.TrustedCAPEM = []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	next.ClusterNetworkCIDR = "10.132.0.0/14"
	g.Expect(s.set(log, next, "")).To(BeTrue())
	g.Expect(calls.Load()).To(Equal(int32(2)))
	// A problem: the facts that come with it are not kept.
	partial := cluster.CloneFacts(next)
	partial.ClusterNetworkCIDR = "10.244.0.0/16"
	g.Expect(s.set(log, partial, "OVN-Kubernetes has no hybrid overlay")).To(BeTrue())
	g.Expect(calls.Load()).To(Equal(int32(3)))
	g.Expect(s.set(log, base, "OVN-Kubernetes has no hybrid overlay")).To(BeFalse())
	g.Expect(calls.Load()).To(Equal(int32(3)))

	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	g.Expect(out).To(ContainSubstring(`clusterNetworkCIDR=\"10.132.0.0/14\"`))
	g.Expect(out).To(ContainSubstring("proxy changed"))
	g.Expect(out).To(ContainSubstring("trustedCA changed"))
	g.Expect(out).To(ContainSubstring("OVN-Kubernetes has no hybrid overlay"))
	g.Expect(out).NotTo(ContainSubstring("hunter2"))
	g.Expect(out).NotTo(ContainSubstring("proxy.example.test"))
	g.Expect(out).NotTo(ContainSubstring("MIIB"))

	// A reader's copy is its own.
	f, problem = s.ClusterFacts()
	g.Expect(problem).To(Equal("OVN-Kubernetes has no hybrid overlay"))
	f.PodNetworkCIDRs[0] = "changed"
	f.TrustedCAPEM[0] = 'X'
	again, _ := s.ClusterFacts()
	g.Expect(again.PodNetworkCIDRs).To(Equal([]string{"10.244.0.0/16"}))
	g.Expect(again.TrustedCAPEM).To(Equal(next.TrustedCAPEM))
	g.Expect(again.ClusterNetworkCIDR).To(Equal("10.132.0.0/14"), "the last good facts")
}

// Concurrent readers, registrations and writers (go test -race).
func TestSourceConcurrent(t *testing.T) {
	s := New(nodeconfig.ClusterFacts{}, core.Config{Namespace: "ns"})
	log := funcr.New(func(string, string) {}, funcr.Options{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				s.OnChange(func() {})
				f := nodeconfig.ClusterFacts{VXLANPort: int32(i*100 + j)}
				s.set(log, f, "")
				_, _ = s.ClusterFacts()
			}
		})
	}
	wg.Wait()
	_, problem := s.ClusterFacts()
	NewWithT(t).Expect(problem).To(BeEmpty())
}
