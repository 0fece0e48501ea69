// Package clusterconfig keeps what kubelets need to know about the
// cluster current: a Source (core.ClusterSource and core.ClusterNotifier)
// that a small controller fills from the cluster's configuration. On
// OpenShift that is the Infrastructure, Network (config and operator),
// Proxy, ImageDigestMirrorSet and ImageTagMirrorSet objects, the DNS
// operator's Service, the kubelet client CA ConfigMap and the operator's
// trusted-ca ConfigMap (which the controller creates for the Cluster
// Network Operator to inject the trusted CA bundle into); elsewhere the
// facts from flags and discovery completed by kube-flannel's ConfigMap
// (kube-flannel-cfg in kube-flannel or kube-system) and the API server's
// ServiceCIDR, with the trusted CA the WindowsNodeConfig names. The pure
// rules are cluster.FactsFrom. It never touches a host.
package clusterconfig

import (
	"strings"
	"sync"

	"github.com/go-logr/logr"

	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/nodeconfig"
)

// ProblemReading is the problem the Source tells until the controller has
// read the cluster's configuration once: no host is configured with
// settings that may be wrong.
const ProblemReading = core.ClusterProblemReading

// Source holds the cluster facts last computed; safe for concurrent use.
// It implements core.ClusterSource and core.ClusterNotifier.
type Source struct {
	base   nodeconfig.ClusterFacts
	config core.Config

	mu        sync.RWMutex
	facts     nodeconfig.ClusterFacts
	problem   string
	listeners []func()
}

var (
	_ core.ClusterSource   = (*Source)(nil)
	_ core.ClusterNotifier = (*Source)(nil)
)

// New returns a Source that starts from base (the facts from flags and
// discovery) with the problem ProblemReading; SetupWithManager adds the
// controller that keeps it current for cfg's platform and namespace.
func New(base nodeconfig.ClusterFacts, cfg core.Config) *Source {
	return &Source{base: cluster.CloneFacts(base), config: cfg, facts: cluster.CloneFacts(base), problem: ProblemReading}
}

// ClusterFacts returns a copy of the current facts and problem. While
// there is a problem the facts are the last good ones (base before the
// configuration was read once) and must not configure a host.
func (s *Source) ClusterFacts() (nodeconfig.ClusterFacts, string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return cluster.CloneFacts(s.facts), s.problem
}

// OnChange registers fn, called from the controller's goroutine after the
// facts or the problem changed (never for a recomputation that changed
// nothing). fn must not block: enqueue, don't work.
func (s *Source) OnChange(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listeners = append(s.listeners, fn)
}

// set stores facts and problem; when they differ from what it held it
// logs one line saying what changed (never a CA bundle or a proxy
// setting) and calls the listeners. It reports whether they differed.
// With a problem the facts are not stored: those last good (base before
// any) stay, and only the problem changes.
func (s *Source) set(log logr.Logger, facts nodeconfig.ClusterFacts, problem string) bool {
	s.mu.Lock()
	if problem != "" {
		facts = s.facts
	}
	changes := cluster.FactsChanges(s.facts, facts)
	oldProblem := s.problem
	if len(changes) == 0 && problem == oldProblem {
		s.mu.Unlock()
		return false
	}
	s.facts, s.problem = cluster.CloneFacts(facts), problem
	listeners := append([]func(){}, s.listeners...)
	s.mu.Unlock()

	kv := []any{"platform", s.config.Platform}
	if len(changes) > 0 {
		kv = append(kv, "changed", strings.Join(changes, ", "))
	}
	if problem != oldProblem {
		kv = append(kv, "problem", problem)
	}
	log.Info("Cluster settings for Windows nodes changed", kv...)
	for _, fn := range listeners {
		fn()
	}
	return true
}
