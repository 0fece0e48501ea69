// Package metrics defines the operator's Prometheus metrics, served on the
// manager's metrics endpoint.
package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
)

var (
	// ConfigurationDuration is how long a host took from first contact to
	// a Ready node.
	ConfigurationDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "wmco_configuration_duration_seconds",
		Help:    "Time from a WindowsInstance's first reconcile to its Node being Ready.",
		Buckets: []float64{5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800},
	})
	// SSHErrors counts failed SSH operations by error type
	// (auth, hostkey, unreachable, diskfull, other).
	SSHErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wmco_ssh_errors_total",
		Help: "SSH operations that failed, by error type.",
	}, []string{"type"})
	// CSRDecisions counts CSR decisions by result (approved, denied,
	// pending, ignored).
	CSRDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wmco_csr_decisions_total",
		Help: "Kubelet certificate signing requests decided, by result.",
	}, []string{"result"})
	// UpgradeDuration is how long upgrades of one host took, from taking
	// the slot to the Node Ready on the new payload (result drained or
	// inplace), or back on the old one (rolledback).
	UpgradeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "wmco_upgrade_duration_seconds",
		Help:    "Duration of host upgrades, by result (drained, inplace, rolledback).",
		Buckets: []float64{5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600},
	}, []string{"result"})
	// UpgradeRollbacks counts hosts whose services were pointed back at
	// their previous payload.
	UpgradeRollbacks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wmco_upgrade_rollbacks_total",
		Help: "Host upgrades rolled back to the previous payload.",
	})
)

// instances is the one instances-by-phase collector; SetInstanceReader
// points it at the running manager's cache.
var instances = &InstanceCollector{}

func init() {
	crmetrics.Registry.MustRegister(ConfigurationDuration, SSHErrors, CSRDecisions, UpgradeDuration, UpgradeRollbacks, instances)
}

// instancesDesc is wmco_instances{phase}.
var instancesDesc = prometheus.NewDesc("wmco_instances", "WindowsInstances by phase.", []string{"phase"}, nil)

// payloadDesc is wmco_instances_by_payload{version}.
var payloadDesc = prometheus.NewDesc("wmco_instances_by_payload", "WindowsInstances by the payload version applied to their host (\"none\" before the first).", []string{"version"}, nil)

// upgradingDesc is wmco_instances_upgrading.
var upgradingDesc = prometheus.NewDesc("wmco_instances_upgrading", "WindowsInstances holding an upgrade slot (cordoned, drained, moving to another payload).", nil, nil)

// InstanceCollector counts WindowsInstances by phase on each scrape, from
// the manager's cache.
type InstanceCollector struct {
	mu     sync.Mutex
	reader client.Reader
}

// Describe implements prometheus.Collector.
func (c *InstanceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- instancesDesc
	ch <- payloadDesc
	ch <- upgradingDesc
}

// Collect implements prometheus.Collector.
func (c *InstanceCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	reader := c.reader
	c.mu.Unlock()
	if reader == nil {
		return // no manager yet: nothing to report
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var list wmcov1.WindowsInstanceList
	if err := reader.List(ctx, &list); err != nil {
		ch <- prometheus.NewInvalidMetric(instancesDesc, err)
		return
	}
	versions := map[string]int{}
	upgrading := 0
	for _, wi := range list.Items {
		v := wi.Status.PayloadVersion
		if v == "" {
			v = "none"
		}
		versions[v]++
		if u := wi.Status.Upgrade; u != nil && !u.InPlace {
			upgrading++
		}
	}
	for v, n := range versions {
		ch <- prometheus.MustNewConstMetric(payloadDesc, prometheus.GaugeValue, float64(n), v)
	}
	ch <- prometheus.MustNewConstMetric(upgradingDesc, prometheus.GaugeValue, float64(upgrading))
	counts := map[wmcov1.InstancePhase]int{}
	for _, p := range []wmcov1.InstancePhase{wmcov1.PhasePending, wmcov1.PhaseReady, wmcov1.PhaseFailed} {
		counts[p] = 0 // always present, so alerts see zeros
	}
	for _, wi := range list.Items {
		p := wi.Status.Phase
		if p == "" {
			p = wmcov1.PhasePending
		}
		counts[p]++
	}
	for p, n := range counts {
		ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(n), string(p))
	}
}

// SetInstanceReader makes wmco_instances count what r lists (the
// manager's cache).
func SetInstanceReader(r client.Reader) {
	instances.mu.Lock()
	defer instances.mu.Unlock()
	instances.reader = r
}
