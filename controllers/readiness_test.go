package controllers_test

import (
	"testing"

	"github.com/openwmco/wmco/controllers"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/nodeconfig"
)

type problemSource string

func (p problemSource) ClusterFacts() (nodeconfig.ClusterFacts, string) {
	return nodeconfig.ClusterFacts{}, string(p)
}

// The leader is ready once the cluster's configuration has been read (a
// problem it found does not make it unready: it reports it); a replica
// waiting to lead is ready; without leader election a manager whose
// controllers have not started (not yet "elected") is not.
func TestClusterConfigurationRead(t *testing.T) {
	leading := make(chan struct{})
	close(leading)
	waiting := make(chan struct{})
	cases := []struct {
		name           string
		elected        chan struct{}
		leaderElection bool
		problem        string
		ready          bool
	}{
		{"leader reading", leading, true, core.ClusterProblemReading, false},
		{"leader has read", leading, true, "", true},
		{"leader found a problem", leading, true, "the cluster network is unknown: set spec.network.clusterNetworkCIDR", true},
		{"waiting to lead", waiting, true, core.ClusterProblemReading, true},
		{"no election, controllers starting", waiting, false, core.ClusterProblemReading, false},
		{"no election, controllers starting, read", waiting, false, "", false},
		{"no election, started, reading", leading, false, core.ClusterProblemReading, false},
		{"no election, started, has read", leading, false, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := controllers.ClusterConfigurationRead(c.elected, c.leaderElection, problemSource(c.problem))(nil)
			if (err == nil) != c.ready {
				t.Errorf("ready = %v (%v), want %v", err == nil, err, c.ready)
			}
		})
	}
}
