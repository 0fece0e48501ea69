//go:build e2e

// Package e2e is the end-to-end suite: the operator turning Windows hosts
// into nodes, seen from outside, through the Kubernetes API and the hosts
// themselves. The same specs run against two providers, chosen with
// WMCO_E2E_PROVIDER:
//
//   - local (default): a local control plane, simulated Windows hosts
//     running the real agent, and the operator binary as its own process
//     (test/localenv). Nothing to set up beyond `make setup-envtest`.
//   - byoh ("bring your own hosts"): a cluster in KUBECONFIG where the
//     operator is deployed, and real Windows hosts reached over SSH.
//
// Run it with `make test-e2e`; README.md ("End-to-end tests") lists the
// variables of the byoh provider.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	machinev1beta1 "github.com/openshift/api/machine/v1beta1"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Host is one Windows host the suite may turn into a node.
type Host struct {
	// Address is the host's IPv4 address or DNS name: its key in the
	// windows-instances ConfigMap and its WindowsInstance's spec.address.
	Address string
	// Port is its SSH port.
	Port int
}

func (h Host) String() string { return h.Address + ":" + strconv.Itoa(h.Port) }

// Timeouts bound the waits of the specs. Simulated hosts are quick; real
// Windows hosts download, install and reboot in minutes.
type Timeouts struct {
	// Join: a listed host to a Ready instance and a Ready Node.
	Join time.Duration
	// Remove: a removed or deleted instance gone, its Node gone, the host
	// clean.
	Remove time.Duration
	// Recover: a stopped service running again.
	Recover time.Duration
	// Reboot: a rebooted host's Node NotReady, then Ready again.
	Reboot time.Duration
}

// ServiceState is what a provider sees of one Windows service.
type ServiceState struct {
	Running bool
	// Instance identifies the current run of the service, so that a
	// restart is told from a service that never stopped: the process ID on
	// Windows, the start count on a simulated host.
	Instance string
}

// ErrMetricsUnavailable is returned by MetricsText when the provider cannot
// reach the operator's metrics endpoint; the metrics specs are skipped.
var ErrMetricsUnavailable = errors.New("the operator's metrics endpoint is not reachable from this provider")

// Provider is a cluster with the operator running and Windows hosts the
// suite may use. Host-level operations go to the host itself: the
// simulator's controls for local, SSH for byoh.
type Provider interface {
	// Name is "local" or "byoh".
	Name() string
	// Namespace is the operator's namespace: the windows-instances
	// ConfigMap and the cloud-private-key Secret live there.
	Namespace() string
	// Username is the SSH user the operator logs in as.
	Username() string
	// Hosts are the hosts the suite may configure (at least two). None of
	// them is listed or configured when the suite starts.
	Hosts() []Host
	// Client and Clientset act as cluster admin.
	Client() client.Client
	Clientset() kubernetes.Interface
	Timeouts() Timeouts

	// StopService stops a Windows service on the host.
	StopService(ctx context.Context, h Host, name string) error
	// Service reports the state of a Windows service on the host.
	Service(ctx context.Context, h Host, name string) (ServiceState, error)
	// Reboot restarts the host; it returns once the host is going down
	// and stays down long enough for its Node to turn NotReady.
	Reboot(ctx context.Context, h Host) error
	// ExpectClean asserts, through g, that nothing the operator installs
	// is left on the host. It is meant to be called inside Eventually.
	ExpectClean(g Gomega, h Host)
	// MachineSet is the Windows MachineSet the machineset spec scales, or
	// nil when the provider has none (the spec is then skipped).
	MachineSet(ctx context.Context) (*machinev1beta1.MachineSet, error)
	// ExpectMachineCleaned asserts, through g, that the VM of a Machine
	// scaled away was clean, and its Node gone, before the VM was
	// destroyed, as far as the provider can see a VM that is gone.
	ExpectMachineCleaned(g Gomega, machine, node string)
	// KillMachineVM powers the Machine's VM off for good, as a VM that
	// died: no SSH, no kubelet. errors.ErrUnsupported when the provider
	// cannot (the step is then skipped).
	KillMachineVM(ctx context.Context, machine string) error
	// ExpectMachineAbandoned asserts, through g, that the VM of a Machine
	// scaled away after it died was destroyed uncleaned, its Node gone
	// before, as far as the provider can see a VM that is gone.
	ExpectMachineAbandoned(g Gomega, machine, node string)
	// MachineAccessTimeout is the operator's --machine-access-timeout.
	MachineAccessTimeout() time.Duration
	// MetricsText is the operator's Prometheus metrics in text format, or
	// an error wrapping ErrMetricsUnavailable.
	MetricsText(ctx context.Context) (string, error)
	// Diagnostics is printed when a spec fails: where to look next (the
	// tail of the operator's log for local).
	Diagnostics() string
	// Stop releases what the provider started.
	Stop() error
}

// newProvider starts or connects to the provider WMCO_E2E_PROVIDER names.
func newProvider(ctx context.Context, log io.Writer) (Provider, error) {
	switch name := envOr("WMCO_E2E_PROVIDER", "local"); name {
	case "local":
		return startLocal(ctx, log)
	case "byoh":
		return connectBYOH(ctx)
	default:
		return nil, fmt.Errorf("WMCO_E2E_PROVIDER=%q: want local or byoh", name)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
