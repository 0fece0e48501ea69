package main

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func TestParseAPIServerMetrics(t *testing.T) {
	before := parseAPIServerMetrics(`# HELP apiserver_terminated_watchers_total x
# TYPE apiserver_terminated_watchers_total counter
apiserver_terminated_watchers_total{resource="certificatesigningrequests"} 2
apiserver_terminated_watchers_total{resource="pods"} 7
go_gc_duration_seconds{quantile="0.5"} 0.001
go_gc_duration_seconds_sum 0.1
go_gc_duration_seconds_count 22
apiserver_flowcontrol_request_wait_duration_seconds_bucket{execute="true",flow_schema="service-accounts",priority_level="workload-low",le="0.005"} 3
apiserver_flowcontrol_request_wait_duration_seconds_sum{execute="true",flow_schema="service-accounts",priority_level="workload-low"} 0.5
apiserver_flowcontrol_request_wait_duration_seconds_count{execute="true",flow_schema="service-accounts",priority_level="workload-low"} 10
apiserver_flowcontrol_request_wait_duration_seconds_sum{execute="true",flow_schema="exempt",priority_level="exempt"} 0
apiserver_flowcontrol_request_wait_duration_seconds_count{execute="true",flow_schema="exempt",priority_level="exempt"} 40
`)
	after := parseAPIServerMetrics(`apiserver_terminated_watchers_total{resource="certificatesigningrequests"} 7
apiserver_terminated_watchers_total{resource="pods"} 9
go_gc_duration_seconds_count 23
apiserver_flowcontrol_request_wait_duration_seconds_sum{execute="true",flow_schema="service-accounts",priority_level="workload-low"} 2.5
apiserver_flowcontrol_request_wait_duration_seconds_count{execute="true",flow_schema="service-accounts",priority_level="workload-low"} 30
apiserver_flowcontrol_request_wait_duration_seconds_sum{execute="false",flow_schema="service-accounts",priority_level="workload-low"} 1
apiserver_flowcontrol_request_wait_duration_seconds_count{execute="false",flow_schema="service-accounts",priority_level="workload-low"} 2
apiserver_flowcontrol_request_wait_duration_seconds_sum{execute="true",flow_schema="exempt",priority_level="exempt"} 0
apiserver_flowcontrol_request_wait_duration_seconds_count{execute="true",flow_schema="exempt",priority_level="exempt"} 90
apiserver_flowcontrol_request_wait_duration_seconds_sum{execute="true",flow_schema="global-default",priority_level="global-default"} 0.25
apiserver_flowcontrol_request_wait_duration_seconds_count{execute="true",flow_schema="global-default",priority_level="global-default"} 5
not a sample
broken{label="x" 1
`)
	if got := after.closedCSRWatches - before.closedCSRWatches; got != 5 {
		t.Errorf("closed CSR watches = %d, want 5 (other resources' closures not counted)", got)
	}
	if got := after.gcs - before.gcs; got != 1 {
		t.Errorf("garbage collections = %d, want 1", got)
	}
	got := after.queuedSince(before)
	want := []apfQueued{
		// rejected requests (execute="false") waited too
		{flow: apfFlow{"workload-low", "service-accounts"}, count: 22, total: 3 * time.Second},
		{flow: apfFlow{"global-default", "global-default"}, count: 5, total: 250 * time.Millisecond},
		{flow: apfFlow{"exempt", "exempt"}, count: 50, total: 0},
	}
	if len(got) != len(want) {
		t.Fatalf("queued = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("queued[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	if s := want[0].String(); s != "workload-low (flow schema service-accounts): 22 requests, 3.00 s waiting in all, mean 136 ms" {
		t.Errorf("String() = %q", s)
	}
}

// The reported burst is the median by p99 (the slower middle one of an
// even count), with every burst's p99 in the order they ran and the
// request counts of the first, the only one counted.
func TestCSRMedian(t *testing.T) {
	burst := func(p99 time.Duration) *csrResult { return &csrResult{n: 200, p99: p99, p50: p99 / 2} }
	counted := burst(300 * time.Millisecond)
	counted.requests = requestCounts{}
	cases := []struct {
		name     string
		runs     []*csrResult
		wantP99  time.Duration
		wantRuns []time.Duration
	}{
		{"one", []*csrResult{burst(400 * time.Millisecond)}, 400 * time.Millisecond, []time.Duration{400 * time.Millisecond}},
		{"three", []*csrResult{counted, burst(500 * time.Millisecond), burst(450 * time.Millisecond)}, 450 * time.Millisecond,
			[]time.Duration{300 * time.Millisecond, 500 * time.Millisecond, 450 * time.Millisecond}},
		{"four", []*csrResult{burst(4), burst(1), burst(3), burst(2)}, 3, []time.Duration{4, 1, 3, 2}},
	}
	for _, tc := range cases {
		g := NewWithT(t)
		got := csrMedian(tc.runs)
		g.Expect(got.p99).To(Equal(tc.wantP99), tc.name)
		g.Expect(got.p50).To(Equal(tc.wantP99/2), tc.name+": the median burst's other figures")
		g.Expect(got.runP99s).To(Equal(tc.wantRuns), tc.name)
	}
	g := NewWithT(t)
	g.Expect(csrMedian([]*csrResult{counted, burst(500 * time.Millisecond), burst(450 * time.Millisecond)}).requests).NotTo(BeNil(),
		"the first burst's request counts")
	g.Expect(counted.runP99s).To(BeNil(), "the runs are not changed")
}

// Each simulated kubelet has a connection of its own, opened once and
// reused: a burst then opens none (client-go would share one transport
// among clients of the same TLS settings).
func TestKubeletClientsHaveTheirOwnConnection(t *testing.T) {
	g := NewWithT(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"major":"1","minor":"37","gitVersion":"v1.37.2"}`))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	var dials atomic.Int64
	var clients []*kubernetes.Clientset
	for i := range 3 {
		cfg := &rest.Config{Host: srv.URL, BearerToken: fmt.Sprintf("token-%d", i), TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
		cs, err := kubeletClient(cfg, &dials)
		g.Expect(err).NotTo(HaveOccurred())
		clients = append(clients, cs)
	}
	for range 2 {
		for _, cs := range clients {
			v, err := cs.Discovery().ServerVersion()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(v.GitVersion).To(Equal("v1.37.2"))
		}
	}
	g.Expect(dials.Load()).To(BeEquivalentTo(3), "one connection per client, reused")
}

func TestCPUBusy(t *testing.T) {
	before := cpuSnapshot{"kube-apiserver": 1000, "operator": 50}
	after := cpuSnapshot{"kube-apiserver": 1300, "operator": 120, "etcd": 30}
	for _, tc := range []struct {
		name             string
		wall             time.Duration
		cores            int
		wantSum, wantPct float64
	}{
		// 3.00 + 0.70 s; etcd, not read before, is left out
		{name: "both cores for 1.85 s", wall: 1850 * time.Millisecond, cores: 2, wantSum: 3.7, wantPct: 1},
		{name: "half the machine", wall: 3700 * time.Millisecond, cores: 2, wantSum: 3.7, wantPct: 0.5},
		{name: "no wall time", wall: 0, cores: 2, wantSum: 3.7, wantPct: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			sum, share := after.busy(before, tc.wall, tc.cores)
			g.Expect(sum).To(BeNumerically("~", tc.wantSum, 1e-9))
			g.Expect(share).To(BeNumerically("~", tc.wantPct, 1e-9))
		})
	}
	g := NewWithT(t)
	g.Expect(after.since(before)).To(Equal("kube-apiserver 3.00s, operator 0.70s"))
}

// fmtCPU lists the processes largest first (ties by name), then the sum
// and its share of the cores over the wall time.
func TestFmtCPU(t *testing.T) {
	g := NewWithT(t)
	before := cpuSnapshot{joinSimulatedHosts: 100, "operator": 50, "kube-apiserver": 1000, "etcd": 0}
	after := cpuSnapshot{joinSimulatedHosts: 2770, "operator": 1270, "kube-apiserver": 1700, "etcd": 140, "kube-controller-manager": 80}
	used := after.minus(before)
	g.Expect(used).To(HaveLen(4), "kube-controller-manager, not read before, is left out")
	g.Expect(fmtCPU(used, 24*time.Second, 2)).To(Equal(
		"simulated hosts 26.7s, operator 12.2s, kube-apiserver 7.0s, etcd 1.4s; 47.3s in all in 24.00 s on 2 cores (99% of the machine)"))
	g.Expect(fmtCPU(map[string]float64{"b": 1, "a": 1}, 0, 2)).To(Equal("a 1.0s, b 1.0s; 2.0s in all in 0 ms on 2 cores (0% of the machine)"))
	g.Expect(fmtCPU(nil, time.Second, 2)).To(Equal("not read"))
}

func TestParseApprovers(t *testing.T) {
	cases := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"", nil, ""},
		{" , ", nil, ""},
		{"floor", []string{approverFloor}, ""},
		{"floor, kube-controller-manager", []string{approverFloor, approverKCM}, ""},
		{"kube-controller-manager,floor", []string{approverKCM, approverFloor}, ""},
		{"operator", nil, `unknown approver "operator"`},
		{"kcm", nil, `unknown approver "kcm"`},
		{"floor,floor", nil, `approver "floor" given twice`},
	}
	for _, tc := range cases {
		g := NewWithT(t)
		got, err := parseApprovers(tc.in)
		if tc.wantErr != "" {
			g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)), tc.in)
			continue
		}
		g.Expect(err).NotTo(HaveOccurred(), tc.in)
		g.Expect(got).To(Equal(tc.want), tc.in)
		for _, a := range got {
			g.Expect(approverNames).To(HaveKey(a), "every approver is named in the report")
		}
	}
}
