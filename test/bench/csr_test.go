package main

import (
	"testing"
	"time"
)

func TestParseAPIServerMetrics(t *testing.T) {
	before := parseAPIServerMetrics(`# HELP apiserver_terminated_watchers_total x
# TYPE apiserver_terminated_watchers_total counter
apiserver_terminated_watchers_total{resource="certificatesigningrequests"} 2
apiserver_terminated_watchers_total{resource="pods"} 7
apiserver_flowcontrol_request_wait_duration_seconds_bucket{execute="true",flow_schema="service-accounts",priority_level="workload-low",le="0.005"} 3
apiserver_flowcontrol_request_wait_duration_seconds_sum{execute="true",flow_schema="service-accounts",priority_level="workload-low"} 0.5
apiserver_flowcontrol_request_wait_duration_seconds_count{execute="true",flow_schema="service-accounts",priority_level="workload-low"} 10
apiserver_flowcontrol_request_wait_duration_seconds_sum{execute="true",flow_schema="exempt",priority_level="exempt"} 0
apiserver_flowcontrol_request_wait_duration_seconds_count{execute="true",flow_schema="exempt",priority_level="exempt"} 40
`)
	after := parseAPIServerMetrics(`apiserver_terminated_watchers_total{resource="certificatesigningrequests"} 7
apiserver_terminated_watchers_total{resource="pods"} 9
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
