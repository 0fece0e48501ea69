package ctrltest

import (
	"context"
	"strings"
	"testing"

	"github.com/openwmco/wmco/test/localcluster"
	"github.com/openwmco/wmco/test/openshiftcrds"
	"github.com/openwmco/wmco/test/ovnsim"
)

// OpenShift makes the test's control plane look like an OVN-Kubernetes
// OpenShift cluster until the test ends: the OpenShift CRDs of
// openshiftcrds.ClusterConfigFiles, the objects a real cluster has
// (openshiftcrds.NewOVNCluster with o; its internal API URL, when empty,
// names the local API server as localhost, so a kubelet that reaches it
// that way was told it by the Infrastructure object), the
// machine-config-operator's node-bootstrapper, and a stand-in for OVN's
// hybrid overlay subnet allocator (ovnsim). Start the operator with
// OperatorOptions.Platform OpenShift afterwards.
func OpenShift(t *testing.T, o openshiftcrds.OVNOptions) *openshiftcrds.OVNCluster {
	t.Helper()
	HostFixture(t)
	ctx := context.Background()
	if err := openshiftcrds.Install(ctx, Cluster.Config, openshiftcrds.AllFiles()...); err != nil {
		t.Fatalf("install the OpenShift CRDs: %v", err)
	}
	// The cluster's objects below are created at once, not held 2 s.
	if err := localcluster.AwaitCRDsSettled(ctx, Cluster.Config); err != nil {
		t.Fatalf("wait for the OpenShift CRDs: %v", err)
	}
	if err := openshiftcrds.InstallNodeBootstrapper(ctx, Cluster.Config); err != nil {
		t.Fatalf("install the node-bootstrapper: %v", err)
	}
	if o.APIServerInternalURL == "" {
		o.APIServerInternalURL = strings.Replace(Cluster.Host, "127.0.0.1", "localhost", 1)
	}
	oc, err := openshiftcrds.NewOVNCluster(ctx, Cluster.Config, o)
	if err != nil {
		t.Fatalf("make the OVN-Kubernetes cluster's configuration: %v", err)
	}
	t.Cleanup(func() {
		if err := oc.Delete(context.Background()); err != nil {
			t.Errorf("delete the OpenShift configuration: %v", err)
		}
	})
	stop, err := ovnsim.Start(ctx, Cluster.Config, ovnsim.Options{})
	if err != nil {
		t.Fatalf("start the hybrid overlay allocator: %v", err)
	}
	t.Cleanup(stop)
	return oc
}
