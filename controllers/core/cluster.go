package core

import "github.com/openwmco/wmco/pkg/nodeconfig"

// ClusterSource tells what kubelets need to know about the cluster, kept
// current from the cluster's configuration (controllers/clusterconfig).
type ClusterSource interface {
	// ClusterFacts returns the current facts, and a problem when the
	// cluster's configuration does not let a Windows host join: then the
	// problem is a sentence saying what to configure where, and no host
	// is touched until it is fixed.
	ClusterFacts() (facts nodeconfig.ClusterFacts, problem string)
}

// ClusterProblemReading is the problem of a ClusterSource that has not
// read the cluster's configuration yet: a moment at start-up. Instances
// say so and wait; the Source's change (ClusterNotifier) wakes them.
const ClusterProblemReading = "Reading the cluster's configuration"

// ClusterNotifier is a ClusterSource that reports changes of its facts or
// problem.
type ClusterNotifier interface {
	OnChange(func())
}

// StaticCluster is a ClusterSource that never changes and has no problem.
type StaticCluster nodeconfig.ClusterFacts

// ClusterFacts returns c.
func (c StaticCluster) ClusterFacts() (nodeconfig.ClusterFacts, string) {
	return nodeconfig.ClusterFacts(c), ""
}
