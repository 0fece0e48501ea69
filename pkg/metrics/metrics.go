// Package metrics defines the operator's Prometheus metrics, served on the
// manager's metrics endpoint.
package metrics

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	certificatesv1 "k8s.io/api/certificates/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/csr"
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
	// (auth, forbidden, hostkey, unreachable, diskfull, other).
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

// Label values the operator uses, initialised at zero so that every
// series exists from the operator's start: an alert on increase() sees the
// first failure, not only the second.
var (
	sshErrorTypes  = []string{"auth", "forbidden", "hostkey", "unreachable", "diskfull", "other"}
	csrResults     = []string{"approved", "denied", "pending", "ignored"}
	upgradeResults = []string{"drained", "inplace", "rolledback"}
)

func init() {
	crmetrics.Registry.MustRegister(ConfigurationDuration, SSHErrors, CSRDecisions, UpgradeDuration, UpgradeRollbacks, instances)
	for _, t := range sshErrorTypes {
		SSHErrors.WithLabelValues(t)
	}
	for _, r := range csrResults {
		CSRDecisions.WithLabelValues(r)
	}
	for _, r := range upgradeResults {
		UpgradeDuration.WithLabelValues(r)
	}
}

// instancesDesc is wmco_instances{phase}.
var instancesDesc = prometheus.NewDesc("wmco_instances", "WindowsInstances by phase.", []string{"phase"}, nil)

// payloadDesc is wmco_instances_by_payload{version}.
var payloadDesc = prometheus.NewDesc("wmco_instances_by_payload", "WindowsInstances by the payload version applied to their host (\"none\" before the first).", []string{"version"}, nil)

// upgradingDesc is wmco_instances_upgrading.
var upgradingDesc = prometheus.NewDesc("wmco_instances_upgrading", "WindowsInstances holding an upgrade slot (cordoned, drained, moving to another payload).", nil, nil)

// conditionDesc is wmco_instance_status_condition: one series of value 1
// per condition present on a WindowsInstance. The label is windowsinstance,
// not instance, which Prometheus gives every scraped series (the target).
// node is the Node the instance registered (status.nodeName), empty
// before. Reasons are CamelCase words; messages never become labels.
var conditionDesc = prometheus.NewDesc("wmco_instance_status_condition",
	"Conditions of each WindowsInstance: 1 per condition present, by type, status and reason; node is the instance's Node.",
	[]string{"windowsinstance", "node", "type", "status", "reason"}, nil)

// csrPendingDesc is wmco_csr_pending_oldest_timestamp_seconds.
var csrPendingDesc = prometheus.NewDesc("wmco_csr_pending_oldest_timestamp_seconds",
	"Creation time (Unix seconds) of the oldest kubelet CSR, neither approved nor denied, that names the node of a WindowsInstance; absent when there is none.",
	[]string{"windowsinstance"}, nil)

// InstanceCollector counts WindowsInstances by phase on each scrape, from
// the manager's cache, and reports each instance's conditions and the age
// of the kubelet CSRs left pending for it.
type InstanceCollector struct {
	mu     sync.Mutex
	reader client.Reader
}

// Describe implements prometheus.Collector.
func (c *InstanceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- instancesDesc
	ch <- payloadDesc
	ch <- upgradingDesc
	ch <- conditionDesc
	ch <- csrPendingDesc
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
	for _, c := range instanceConditions(list.Items) {
		ch <- prometheus.MustNewConstMetric(conditionDesc, prometheus.GaugeValue, 1, c.instance, c.node, c.condType, c.status, c.reason)
	}
	var csrs certificatesv1.CertificateSigningRequestList
	if err := reader.List(ctx, &csrs); err != nil {
		ch <- prometheus.NewInvalidMetric(csrPendingDesc, err)
		return
	}
	for name, created := range oldestPendingCSRs(list.Items, csrs.Items) {
		ch <- prometheus.MustNewConstMetric(csrPendingDesc, prometheus.GaugeValue, float64(created.Unix()), name)
	}
}

// instanceCondition is one series of wmco_instance_status_condition.
type instanceCondition struct {
	instance, node, condType, status, reason string
}

// instanceConditions lists the conditions of the instances as series.
func instanceConditions(items []wmcov1.WindowsInstance) []instanceCondition {
	var out []instanceCondition
	for i := range items {
		wi := &items[i]
		for _, c := range wi.Status.Conditions {
			out = append(out, instanceCondition{
				instance: wi.Name, node: wi.Status.NodeName,
				condType: c.Type, status: string(c.Status), reason: c.Reason,
			})
		}
	}
	return out
}

// oldestPendingCSRs returns, per WindowsInstance, the creation time of
// the oldest kubelet CSR that is neither approved nor denied and names
// (as system:node:<name>, under the rules of pkg/csr) a node the instance
// registered or may register as: status.nodeName, spec.nodeName,
// spec.hostname or the host's hostname in lower case. A name two
// instances may take is left out, as the approver leaves it; so are
// instances being deleted.
func oldestPendingCSRs(items []wmcov1.WindowsInstance, csrs []certificatesv1.CertificateSigningRequest) map[string]time.Time {
	byNode := map[string]string{}
	ambiguous := map[string]bool{}
	for i := range items {
		wi := &items[i]
		if !wi.DeletionTimestamp.IsZero() {
			continue
		}
		for _, n := range []string{wi.Status.NodeName, wi.Spec.NodeName, wi.Spec.Hostname, strings.ToLower(wi.Status.Host.Hostname)} {
			if n == "" {
				continue
			}
			if other, ok := byNode[n]; ok && other != wi.Name {
				ambiguous[n] = true
			}
			byNode[n] = wi.Name
		}
	}
	lookup := func(nodeName string) (csr.Instance, bool) {
		name, ok := byNode[nodeName]
		if !ok || ambiguous[nodeName] {
			return csr.Instance{}, false
		}
		return csr.Instance{Name: name, NodeName: nodeName}, true
	}
	out := map[string]time.Time{}
	for i := range csrs {
		c := &csrs[i]
		if csrDecided(c) {
			continue
		}
		d := csr.Evaluate(&c.Spec, lookup)
		if d.Verdict == csr.Ignore || d.Instance == "" {
			continue // not a kubelet CSR of a known Windows host
		}
		created := c.CreationTimestamp.Time
		if t, ok := out[d.Instance]; !ok || created.Before(t) {
			out[d.Instance] = created
		}
	}
	return out
}

// csrDecided tells whether the CSR is approved or denied.
func csrDecided(c *certificatesv1.CertificateSigningRequest) bool {
	for _, cond := range c.Status.Conditions {
		if cond.Type == certificatesv1.CertificateApproved || cond.Type == certificatesv1.CertificateDenied {
			return true
		}
	}
	return false
}

// SetInstanceReader makes wmco_instances count what r lists (the
// manager's cache); wmco_instance_status_condition and
// wmco_csr_pending_oldest_timestamp_seconds read WindowsInstances and
// CertificateSigningRequests from it too.
func SetInstanceReader(r client.Reader) {
	instances.mu.Lock()
	defer instances.mu.Unlock()
	instances.reader = r
}
