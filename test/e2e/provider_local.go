//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	. "github.com/onsi/gomega"
	configv1 "github.com/openshift/api/config/v1"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/openwmco/wmco/pkg/userdata"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/localenv"
	"github.com/openwmco/wmco/test/machinesim"
	"github.com/openwmco/wmco/test/proc"
)

const (
	// localHosts is how many simulated hosts the local provider starts.
	localHosts = 3
	// localRebootDownTime keeps a rebooted host down past the local
	// plane's node monitor grace period (10s, checked every 2s), so its
	// Node turns NotReady as a real reboot's would.
	localRebootDownTime = 20 * time.Second
)

// localProvider runs everything on this machine (test/localenv).
type localProvider struct {
	env   *localenv.Env
	hosts map[string]*localenv.Host // by Host.Address
}

// startLocal starts the control plane, the simulated hosts and the
// operator: WMCO_E2E_OPERATOR, else bin/operator when built (make
// test-e2e builds it), else built from cmd/operator.
func startLocal(ctx context.Context, log io.Writer) (*localProvider, error) {
	bin := os.Getenv("WMCO_E2E_OPERATOR")
	if bin == "" {
		root, err := proc.RepoRoot()
		if err != nil {
			return nil, err
		}
		if p := filepath.Join(root, "bin", "operator"); fileExists(p) {
			bin = p
		}
	}
	platform := configv1.PlatformType(envOr("WMCO_E2E_MACHINE_PLATFORM", string(configv1.AWSPlatformType)))
	env, err := localenv.Start(ctx, localenv.Options{Hosts: localHosts, OperatorBinary: bin, Log: log, MachinePlatform: platform,
		OperatorArgs: []string{"--machine-access-timeout=" + localMachineAccessTimeout.String()}})
	if err != nil {
		return nil, err
	}
	p := &localProvider{env: env, hosts: map[string]*localenv.Host{}}
	for _, h := range env.Hosts {
		p.hosts[h.IP] = h
	}
	return p, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (p *localProvider) Name() string                    { return "local" }
func (p *localProvider) Namespace() string               { return localenv.Namespace }
func (p *localProvider) Username() string                { return "Administrator" }
func (p *localProvider) Client() client.Client           { return p.env.Client }
func (p *localProvider) Clientset() kubernetes.Interface { return p.env.Clientset }

func (p *localProvider) Hosts() []Host {
	hosts := make([]Host, 0, len(p.env.Hosts))
	for _, h := range p.env.Hosts {
		hosts = append(hosts, Host{Address: h.IP, Port: h.Port})
	}
	return hosts
}

func (p *localProvider) Timeouts() Timeouts {
	return Timeouts{Join: 2 * time.Minute, Remove: time.Minute, Recover: 30 * time.Second, Reboot: 90 * time.Second}
}

func (p *localProvider) host(h Host) *localenv.Host {
	sim := p.hosts[h.Address]
	if sim == nil {
		panic(fmt.Sprintf("no simulated host %s", h))
	}
	return sim
}

func (p *localProvider) StopService(ctx context.Context, h Host, name string) error {
	return p.host(h).Services.Stop(ctx, name)
}

func (p *localProvider) Service(_ context.Context, h Host, name string) (ServiceState, error) {
	sim := p.host(h)
	return ServiceState{Running: sim.Services.Running(name), Instance: strconv.Itoa(sim.Services.Starts(name))}, nil
}

func (p *localProvider) Reboot(ctx context.Context, h Host) error {
	return p.host(h).Host.Reboot(ctx, localRebootDownTime)
}

// ExpectClean checks what the integration tests check: no service, no HNS
// network, no file under C:\k or the kubelet's directory.
func (p *localProvider) ExpectClean(g Gomega, h Host) {
	sim := p.host(h)
	names, err := sim.Services.List(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(names).To(BeEmpty(), "services left on %s", sim.Name)
	g.Expect(sim.Networks()).To(BeEmpty(), "HNS networks left on %s", sim.Name)
	for _, root := range []string{wicdapi.InstallRoot, `C:\var\lib\kubelet`} {
		if infos, err := sim.Host.Disk().List(root); err == nil {
			left := make([]string, 0, len(infos))
			for _, fi := range infos {
				left = append(left, fi.Name())
			}
			g.Expect(left).To(BeEmpty(), "files left under %s on %s", root, sim.Name)
		}
	}
}

func (p *localProvider) MetricsText(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.env.MetricsURL, nil)
	if err != nil {
		return "", err
	}
	return getText(req, http.DefaultClient)
}

func (p *localProvider) Diagnostics() string {
	return fmt.Sprintf("KUBECONFIG=%s\nLast lines of the operator's log %s:\n%s",
		p.env.Cluster.KubeconfigPath, p.env.OperatorLog, proc.TailFile(p.env.OperatorLog, 40))
}

func (p *localProvider) Stop() error { return p.env.Stop() }

// getText sends req and returns the body of a 200 answer.
func getText(req *http.Request, c *http.Client) (string, error) {
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", req.URL, resp.Status, body)
	}
	return string(body), nil
}

// localMachineAccessTimeout is the local operator's
// --machine-access-timeout: short, so that the spec scaling past a dead
// VM waits seconds, not the default 10 minutes.
const localMachineAccessTimeout = 20 * time.Second

func (p *localProvider) MachineAccessTimeout() time.Duration { return localMachineAccessTimeout }

// KillMachineVM closes the simulated host of the Machine's VM.
func (p *localProvider) KillMachineVM(_ context.Context, machine string) error {
	h := p.env.Cloud.Host(machine)
	if h == nil {
		return fmt.Errorf("machine %s has no VM", machine)
	}
	return h.Close()
}

// ExpectMachineAbandoned checks the simulated cloud's record of the VM:
// its state just before it was destroyed still has what the operator
// installed, and the Node was gone by then.
func (p *localProvider) ExpectMachineAbandoned(g Gomega, machine, node string) {
	snap, ok := p.env.Cloud.Snapshot(machine)
	g.Expect(ok).To(BeTrue(), "the VM of Machine %s was destroyed", machine)
	g.Expect(snap.Leftovers()).To(ContainElement("file "+wicdapi.AgentPath), "the dead VM was not cleaned")
	p.expectNodeGoneFirst(g, machine, node)
}

// expectNodeGoneFirst checks that the cloud found no Node to delete when
// it destroyed the Machine's VM: the operator had deleted it.
func (p *localProvider) expectNodeGoneFirst(g Gomega, machine, node string) {
	var kinds []machinesim.EventKind
	for _, ev := range p.env.Cloud.EventsOf(machine) {
		kinds = append(kinds, ev.Kind)
	}
	g.Expect(kinds).To(ContainElement(machinesim.EventNodeAlreadyGone), "Node %s was deleted before the VM went", node)
	g.Expect(kinds).NotTo(ContainElement(machinesim.EventNodeDeletedByCloud), "the cloud had to delete Node %s", node)
}

// localMachineSet is the name of the local provider's Windows MachineSet.
const localMachineSet = "e2e-windows"

// MachineSet creates (once) a Windows MachineSet of the simulated cloud,
// at zero replicas, whose VMs get the operator's windows-user-data.
func (p *localProvider) MachineSet(ctx context.Context) (*machinev1beta1.MachineSet, error) {
	ms := machinesim.WindowsMachineSet(p.env.Cloud.Namespace(), localMachineSet, userdata.SecretName)
	if err := p.env.Client.Create(ctx, ms); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
		if err := p.env.Client.Get(ctx, client.ObjectKeyFromObject(ms), ms); err != nil {
			return nil, err
		}
	}
	return ms, nil
}

// ExpectMachineCleaned checks the simulated cloud's record of the VM: its
// state just before it was destroyed has nothing of the operator's left,
// and the Node was gone by then (the cloud found none to delete).
func (p *localProvider) ExpectMachineCleaned(g Gomega, machine, node string) {
	snap, ok := p.env.Cloud.Snapshot(machine)
	g.Expect(ok).To(BeTrue(), "the VM of Machine %s was destroyed", machine)
	g.Expect(snap.Leftovers()).To(BeEmpty(), "left on the VM of Machine %s", machine)
	p.expectNodeGoneFirst(g, machine, node)
}
