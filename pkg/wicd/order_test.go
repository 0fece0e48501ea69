package wicd

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// startLog records a fake service manager's starts: which began, which
// returned, and what had returned when each began.
type startLog struct {
	mu       sync.Mutex
	begun    []string
	returned map[string]bool
	// seen maps a service to the services whose start had returned when
	// its own start began.
	seen map[string][]string
}

func (l *startLog) begin(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.begun = append(l.begun, name)
	var seen []string
	for n := range l.returned {
		seen = append(seen, n)
	}
	l.seen[name] = seen
}

func (l *startLog) end(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.returned[name] = true
}

func TestStartTogetherKeepsDependencyOrder(t *testing.T) {
	g := NewWithT(t)
	// The node's services: containerd <- kubelet <- hybrid-overlay <-
	// kube-proxy (which needs the kubelet too); the others stand alone.
	order, err := startOrder([]wicdapi.Service{
		svc("containerd"), svc("kubelet", "containerd"), svc("hybrid-overlay", "kubelet"),
		svc("kube-proxy", "hybrid-overlay", "kubelet"), svc("csi-proxy"), svc("windows_exporter"),
	})
	g.Expect(err).NotTo(HaveOccurred())

	l := &startLog{returned: map[string]bool{}, seen: map[string][]string{}}
	// The independent services' starts must be under way at once: each
	// waits until all three have begun (bounded, so a serial start fails
	// the test instead of hanging it).
	independent := map[string]bool{"containerd": true, "csi-proxy": true, "windows_exporter": true}
	var barrier sync.WaitGroup
	barrier.Add(len(independent))
	allBegun := make(chan struct{})
	go func() { barrier.Wait(); close(allBegun) }()
	start := func(_ context.Context, name string) error {
		l.begin(name)
		defer l.end(name)
		if independent[name] {
			barrier.Done()
			select {
			case <-allBegun:
			case <-time.After(10 * time.Second):
				return errors.New("the independent services were not started together")
			}
		}
		return nil
	}
	started, err := startTogether(context.Background(), order, map[string]bool{}, start)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(started).To(Equal(names(order)), "reported in start order")
	g.Expect(l.seen["kubelet"]).To(ContainElement("containerd"))
	g.Expect(l.seen["hybrid-overlay"]).To(ContainElements("containerd", "kubelet"))
	g.Expect(l.seen["kube-proxy"]).To(ContainElements("containerd", "kubelet", "hybrid-overlay"))
}

func TestStartTogether(t *testing.T) {
	svcs := []wicdapi.Service{
		svc("containerd"), svc("kubelet", "containerd"), svc("kube-proxy", "kubelet"), svc("csi-proxy"),
	}
	cases := []struct {
		name    string
		running map[string]bool
		fail    map[string]bool
		started []string
		wantErr string
	}{
		{"all stopped", nil, nil, []string{"containerd", "csi-proxy", "kubelet", "kube-proxy"}, ""},
		{"running ones are left alone", map[string]bool{"containerd": true, "csi-proxy": true}, nil, []string{"kubelet", "kube-proxy"}, ""},
		{"nothing to start", map[string]bool{"containerd": true, "csi-proxy": true, "kubelet": true, "kube-proxy": true}, nil, nil, ""},
		{"a failed start keeps its dependents stopped", nil, map[string]bool{"kubelet": true}, []string{"containerd"}, "start service kubelet"},
		// Started together, either may fail first; a failure stops what had
		// not started yet, so the other may never be asked.
		{"a failure among services started together is reported", nil, map[string]bool{"containerd": true, "csi-proxy": true}, nil, "start service (containerd|csi-proxy)"},
	}
	order, err := startOrder(svcs)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var mu sync.Mutex
			var asked []string
			start := func(_ context.Context, name string) error {
				mu.Lock()
				asked = append(asked, name)
				mu.Unlock()
				if tc.fail[name] {
					return errors.New("the service did not respond")
				}
				return nil
			}
			running := tc.running
			if running == nil {
				running = map[string]bool{}
			}
			started, err := startTogether(context.Background(), order, running, start)
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(MatchRegexp(tc.wantErr)))
				var we *wicdapi.Error
				g.Expect(errors.As(err, &we)).To(BeTrue())
				g.Expect(we.Code).To(Equal(wicdapi.CodeServiceFailed))
			} else {
				g.Expect(err).NotTo(HaveOccurred())
			}
			if tc.name == "a failed start keeps its dependents stopped" {
				// csi-proxy may or may not have started by the failure.
				g.Expect(started).To(Or(Equal(tc.started), Equal([]string{"containerd", "csi-proxy"})))
				g.Expect(asked).NotTo(ContainElement("kube-proxy"))
				return
			}
			if tc.name == "the first failure in order is reported" {
				g.Expect(asked).NotTo(ContainElements("kubelet", "kube-proxy"))
			}
			g.Expect(started).To(Equal(tc.started))
			for n := range running {
				g.Expect(asked).NotTo(ContainElement(n))
			}
		})
	}
}
