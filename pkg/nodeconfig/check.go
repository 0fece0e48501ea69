package nodeconfig

import (
	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/payload"
)

// checkHost is a host every configuration must be able to render for: a
// supported build, one documentation address (data only, never dialled)
// and a valid node name.
var checkHost = HostFacts{Hostname: "config-check", OSBuild: OSBuildServer2022, Addresses: []string{"192.0.2.1"}}

// CheckConfig reports what of a WindowsNodeConfig spec, in this cluster
// and with this payload, keeps every host from being configured: the
// errors Render would return for any host. nil means the configuration
// renders. Host-specific problems (an unsupported build, a host subnet)
// are not found here; they are reported on each WindowsInstance.
func CheckConfig(spec wmcov1alpha1.WindowsNodeConfigSpec, cluster ClusterFacts, p *payload.Manifest) error {
	_, err := resolve(Inputs{
		Config: spec, Cluster: cluster, Host: checkHost, NodeName: checkHost.Hostname, Payload: p,
		BootstrapToken: "000000.0000000000000000",
	})
	return err
}
