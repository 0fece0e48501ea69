// Package simagent makes a simulated Windows host (test/winsim) able to
// become a Kubernetes node: it adds a Windows service manager, runs the real
// node agent (pkg/wicd) in-process whenever C:\k\wicd.exe is executed over
// SSH or started as a service, and runs the kubelet emulator
// (test/kubeletemu) as the kubelet service's process.
package simagent

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/kubeletemu"
	"github.com/openwmco/wmco/test/winsim"
)

// HNS networks hybrid-overlay creates: the overlay, and the base network
// it creates first.
const (
	HybridOverlayNetwork     = "OVNKubernetesHybridOverlayNetwork"
	BaseHybridOverlayNetwork = "BaseOVNKubernetesHybridOverlayNetwork"
)

// agentImagePrefix starts the content of a simulated agent binary that
// names its version (AgentImage).
const agentImagePrefix = "MZ wicd-sim version="

// AgentImage is the content of a simulated agent binary of version v:
// uploaded to C:\k\wicd.exe (or the staging path) and run, the agent
// reports v, so tests can tell agent versions apart. Any other content
// runs as Options.AgentVersion.
func AgentImage(v string) []byte { return []byte(agentImagePrefix + v + "\n") }

// agentImageHead is how much of an agent binary imageVersion reads: the
// version line of AgentImage, not the whole binary.
const agentImageHead = 4 << 10

// imageVersion is the version an agent binary's content names, or def.
func imageVersion(image []byte, def string) string {
	v, ok := bytes.CutPrefix(image, []byte(agentImagePrefix))
	if !ok {
		return def
	}
	v, _, _ = bytes.Cut(v, []byte("\n"))
	return string(v)
}

// Options tune the node host.
type Options struct {
	// AgentVersion reported by the in-process agent (default "sim").
	AgentVersion string
	// ContainersFeatureDisabled starts the host without the Containers
	// feature, so enable-features has to turn it on and reboot.
	ContainersFeatureDisabled bool
	// ClockSkew is added to the host's clock.
	ClockSkew time.Duration
	// AgentRunInterval overrides how often the agent service re-applies
	// its plan (default wicd.DefaultRunInterval).
	AgentRunInterval time.Duration
	// ServiceStartDelay is how long each service start takes.
	ServiceStartDelay time.Duration
	// StartGates, by lower-case base name of a service's binary, hold
	// that service's starts: a start is pending (its process runs, the
	// start call has not returned) until the gate returns, as a service
	// that reports SERVICE_START_PENDING while it waits for something.
	// A gate's error fails the start. Tests use them to order what
	// happens on the host against what happens in the cluster.
	StartGates map[string]func(ctx context.Context) error
	// StopGates, by lower-case base name of a service's binary, hold
	// that service's stops: the service runs on, its stop pending, until
	// the gate returns (a gate's error fails the stop and leaves it
	// running), as a service slow to stop. Tests use them to cut an apply
	// short between a service's reconfiguration and its restart.
	StopGates map[string]func(ctx context.Context) error
	// RecoveryScale multiplies service recovery delays (default 1).
	RecoveryScale float64
	// KubeletVersion reported by the kubelet emulator when KubeletBinaries
	// does not know the kubelet binary the service runs.
	KubeletVersion string
	// KubeletBinaries maps the SHA-256 (hex) of kubelet binaries to the
	// version each reports, as `kubelet.exe --version` would on Windows:
	// the emulator reports the version of the bytes really installed
	// (a payload manifest records it).
	KubeletBinaries map[string]string
	// FailingBinaries maps the SHA-256 (hex) of binaries that fail at
	// once to what they print: a service whose binary (or, under
	// kube-log-runner, wrapped program) has such bytes starts and exits
	// immediately, as a broken build does on Windows. Starting it fails
	// with ErrProcessAborted (exit code 1067, "The process terminated
	// unexpectedly."), its LastError holds the message, and the recovery
	// actions restart it (to fail again) as for any crash. A failing
	// kubelet never runs the emulator, so no Node registers or
	// heartbeats for it.
	FailingBinaries map[string]string
	// KubeletLeaseDuration of the emulated kubelet's Lease (default 40s).
	KubeletLeaseDuration time.Duration
	// KubeletStatusInterval between Node status posts (default 10s).
	KubeletStatusInterval time.Duration
	// RebootDownTime is how long the host stays down after
	// `shutdown /r` (default 1s).
	RebootDownTime time.Duration
	// ShutdownTimerScale multiplies the time `shutdown /r /t N` waits
	// before the reboot, during which the host runs on and answers
	// (default 1: N seconds, as on Windows). Tests that only need a
	// reboot may shorten it; the operator must cope with the full wait.
	ShutdownTimerScale float64
	// DefenderPresent installs Microsoft Defender, whose exclusions the
	// agent then manages.
	DefenderPresent bool
	// NetworkDeleteResetsConnections makes deleting an HNS network reset
	// the host's connections, the SSH session doing it included, as it
	// can on Windows.
	NetworkDeleteResetsConnections bool
	// Log receives the agent's and kubelet's diagnostics; nil discards.
	Log io.Writer
}

// Node is a simulated host with its node-side software.
type Node struct {
	Host     *winsim.Host
	Services *ServiceManager
	opts     Options
	system   *system
	hns      *hns
	firewall *firewall
	defender *defender
	roots    *rootStore
	backend  *wicd.Backend

	mu sync.Mutex
	// serviceVersion is the version of the running agent service's
	// process, "" while it does not run.
	serviceVersion string
}

// Install adds the service manager, the agent and the kubelet emulator to
// a running host.
func Install(h *winsim.Host, opts Options) (*Node, error) {
	if opts.AgentVersion == "" {
		opts.AgentVersion = "sim"
	}
	if opts.RecoveryScale == 0 {
		opts.RecoveryScale = 1
	}
	if opts.ShutdownTimerScale == 0 {
		opts.ShutdownTimerScale = 1
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	n := &Node{Host: h, opts: opts,
		system:   &system{host: h, features: map[string]bool{wicd.FeatureContainers: !opts.ContainersFeatureDisabled}, pending: map[string]bool{}},
		hns:      &hns{networks: map[string]bool{}, host: h, resets: opts.NetworkDeleteResetsConnections},
		firewall: &firewall{rules: map[string]wicd.FirewallRuleState{}},
		defender: &defender{present: opts.DefenderPresent},
		roots:    &rootStore{certs: map[string][]byte{}},
	}
	n.system.clockSkew.Store(int64(opts.ClockSkew))
	n.Services = newServiceManager(h, map[string]Process{
		"kubelet.exe":             n.runKubelet,
		"wicd.exe":                n.runAgentService,
		"hybrid-overlay-node.exe": n.runHybridOverlay,
		"flanneld.exe":            n.runFlanneld,
	}, opts)
	n.Services.startChecks = n.startChecks()
	n.backend = &wicd.Backend{
		Services: n.Services, Files: diskFiles{h.Disk()}, System: n.system, Network: n.hns,
		Locker: hostLock{ch: make(chan struct{}, 1)}, Exec: hostExec{h}, Firewall: n.firewall, Defender: n.defender,
		Accounts: accounts{host: h, user: "SYSTEM"}, Certificates: n.roots,
		Version: opts.AgentVersion, OS: "windows", Arch: "amd64", Executable: wicdapi.AgentPath,
	}
	// The system first, so features enabled before a reboot are on when
	// the services start.
	for _, c := range []winsim.Component{n.system, n.hns, n.Services} {
		if err := h.AddComponent(c); err != nil {
			return nil, fmt.Errorf("simagent: %w", err)
		}
	}
	for _, p := range []string{wicdapi.AgentPath, wicdapi.AgentStagingPath} {
		if err := h.RegisterProgram(p, winsim.ProgramFunc(n.execAgent)); err != nil {
			return nil, err
		}
	}
	if err := h.RegisterProgram(`C:\Windows\System32\shutdown.exe`, winsim.ProgramFunc(n.shutdown)); err != nil {
		return nil, err
	}
	if err := h.RegisterProgram(certutilPath, winsim.ProgramFunc(n.certutil)); err != nil {
		return nil, err
	}
	return n, nil
}

// SetClockSkew sets the host's clock off the real one by d from now on
// (Options.ClockSkew at install), as a host whose time service lost its
// source drifts: what the agent reads as the time (its facts and
// preflight's clock check) follows. The kubelet emulator keeps the real
// clock.
func (n *Node) SetClockSkew(d time.Duration) { n.system.clockSkew.Store(int64(d)) }

// Backend is the agent's view of this host, for tests that call pkg/wicd
// directly.
func (n *Node) Backend() *wicd.Backend { return n.backend }

// FirewallRules lists the host's firewall rules, enabled or not.
func (n *Node) FirewallRules() []wicdapi.FirewallRule { return n.firewall.Rules() }

// FirewallRuleEnabled reports whether the rule named name is there and
// enabled.
func (n *Node) FirewallRuleEnabled(name string) bool {
	r, err := n.firewall.Rule(context.Background(), name)
	return err == nil && r.Enabled
}

// DisableFirewallRule disables a rule as an administrator would (netsh
// advfirewall firewall set rule name=... new enable=no): it stays, but
// lets nothing in.
func (n *Node) DisableFirewallRule(name string) error { return n.firewall.enable(name, false) }

// DefenderExclusions lists Defender's exclusions.
func (n *Node) DefenderExclusions() []string {
	l, _ := n.defender.Exclusions(context.Background())
	return l
}

// RootCertificates lists the thumbprints (wicdapi.Thumbprint) of the
// certificates in the host's LocalMachine Root store, sorted.
func (n *Node) RootCertificates() []string { return n.roots.thumbprints() }

// AddRootCertificate puts a certificate (DER) into the LocalMachine Root
// store as an administrator would, outside the agent.
func (n *Node) AddRootCertificate(der []byte) error {
	return n.roots.AddRoot(context.Background(), der)
}

// AgentServiceVersion is the version the agent service's running process
// reports, or "" while the service does not run.
func (n *Node) AgentServiceVersion() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.serviceVersion
}

// agentBackend is the backend of the agent binary at path run by user:
// its version is the one the binary's content names.
func (n *Node) agentBackend(path, user string) (*wicd.Backend, error) {
	head, err := readHead(n.Host.Disk(), path, agentImageHead)
	if err != nil {
		return nil, err
	}
	b := *n.backend
	b.Version = imageVersion(head, n.opts.AgentVersion)
	b.Executable = path
	b.Accounts = accounts{host: n.Host, user: user}
	b.System = userSystem{system: n.system, host: n.Host, user: user}
	b.Certificates = userRoots{rootStore: n.roots, host: n.Host, user: user}
	return &b, nil
}

// FailNetworkDelete makes every deletion of an HNS network fail with err
// (as when the Host Network Service does not answer) until it is called
// with nil.
func (n *Node) FailNetworkDelete(err error) {
	n.hns.mu.Lock()
	defer n.hns.mu.Unlock()
	n.hns.deleteErr = err
}

// Networks lists the host's HNS networks.
func (n *Node) Networks() []string {
	l, _ := n.hns.ListNetworks()
	return l
}

// execAgent runs `C:\k\wicd.exe ...` (or the staging agent) for an SSH
// client, if the binary has been uploaded.
func (n *Node) execAgent(ctx context.Context, inv *winsim.Invocation) int {
	b, err := n.agentBackend(inv.Path, inv.User)
	if err != nil {
		fmt.Fprintf(inv.Stderr, "'%s' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n", inv.Args[0])
		return 1
	}
	stderr, done := n.logged(inv.Args[1:], b.Version, inv.Stderr)
	defer done()
	return wicd.Main(ctx, b, inv.Args[1:], inv.Stdout, stderr)
}

// runAgentService is the agent's Windows service: `wicd run`.
func (n *Node) runAgentService(ctx context.Context, p ProcessInfo) error {
	args := p.Args
	if n.opts.AgentRunInterval > 0 && !hasFlag(args, "--interval") {
		args = append(append([]string(nil), args...), "--interval="+n.opts.AgentRunInterval.String())
	}
	b, err := n.agentBackend(p.Binary, "SYSTEM")
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.serviceVersion = b.Version
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.serviceVersion = ""
		n.mu.Unlock()
	}()
	var stdout bytes.Buffer
	stderr, done := n.logged(args, b.Version, cmp.Or[io.Writer](n.opts.Log, io.Discard))
	defer done()
	if code := wicd.Main(ctx, b, args, &stdout, stderr); code != 0 && ctx.Err() == nil {
		return fmt.Errorf("wicd %s exited with status %d: %s", strings.Join(args, " "), code, stdout.String())
	}
	return nil
}

// runKubelet is the kubelet service's process.
func (n *Node) runKubelet(ctx context.Context, p ProcessInfo) error {
	f := n.Host.Facts()
	addrs, _ := n.system.Addresses()
	version := n.opts.KubeletVersion
	if len(n.opts.KubeletBinaries) > 0 {
		if sum, err := fileSum(n.Host.Disk(), p.Binary); err == nil {
			if v, ok := n.opts.KubeletBinaries[sum]; ok {
				version = v
			}
		}
	}
	return kubeletemu.Run(ctx, kubeletemu.Config{
		Args: p.Args, Disk: diskFiles{n.Host.Disk()},
		Host:    kubeletemu.Host{Hostname: f.Hostname, Addresses: addrs, OSBuild: f.OSBuild},
		Version: version, LeaseDuration: n.opts.KubeletLeaseDuration,
		StatusInterval: n.opts.KubeletStatusInterval, Log: n.opts.Log,
	})
}

// runHybridOverlay creates the overlay's HNS networks, the base network
// first, as hybrid-overlay-node does once it runs, and idles.
func (n *Node) runHybridOverlay(ctx context.Context, _ ProcessInfo) error {
	n.hns.create(BaseHybridOverlayNetwork)
	n.hns.create(HybridOverlayNetwork)
	<-ctx.Done()
	return nil
}

// shutdown answers `shutdown.exe /r [/t N]` and `shutdown.exe /a` as
// Windows does. /r schedules a reboot N seconds later (30 without /t;
// Options.ShutdownTimerScale scales N) and returns at once: until then the
// host runs its old boot and answers as before. It then stays down for
// RebootDownTime. While a reboot is scheduled another /r fails (1190);
// /a cancels it (1116 when none is). Only administrators may shut a
// Windows Server down (5 for other users).
func (n *Node) shutdown(_ context.Context, inv *winsim.Invocation) int {
	if !n.Host.IsAdmin(inv.User) {
		fmt.Fprint(inv.Stderr, "Access is denied.(5)\r\n")
		return 5
	}
	if hasFlag(inv.Args, "/a") {
		if !n.system.abortReboot() {
			fmt.Fprint(inv.Stderr, "Unable to abort the system shutdown because no shutdown was in progress.(1116)\r\n")
			return 1116
		}
		return 0
	}
	if !hasFlag(inv.Args, "/r") {
		fmt.Fprintln(inv.Stderr, "simagent: only shutdown /r and /a are simulated")
		return 1
	}
	down := n.opts.RebootDownTime
	if down == 0 {
		down = time.Second
	}
	secs := defaultShutdownTimer
	for i, a := range inv.Args {
		if !strings.EqualFold(a, "/t") {
			continue
		}
		if i+1 == len(inv.Args) {
			fmt.Fprint(inv.Stderr, "The parameter is incorrect.(87)\r\n")
			return 87
		}
		v, err := strconv.Atoi(inv.Args[i+1])
		if err != nil || v < 0 || v > maxShutdownTimer {
			fmt.Fprintf(inv.Stderr, "%s: The parameter is incorrect.(87)\r\n", inv.Args[i+1])
			return 87
		}
		secs = v
	}
	delay := time.Duration(float64(time.Duration(secs)*time.Second) * n.opts.ShutdownTimerScale)
	if !n.system.scheduleReboot(delay, down) {
		fmt.Fprint(inv.Stderr, "A system shutdown has already been scheduled.(1190)\r\n")
		return 1190
	}
	return 0
}

// shutdown.exe's /t: 30 s when not given, at most ten years.
const (
	defaultShutdownTimer = 30
	maxShutdownTimer     = 315360000
)

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}
