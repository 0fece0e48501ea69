// Package localenv runs the whole product on one machine, as the demo, the
// e2e suite's local provider and the benchmarks need it: a real control
// plane (test/localcluster), simulated Windows hosts (test/winsim with the
// agent and kubelet emulator), and the operator binary as its own process
// with a kubeconfig, as it would run in a cluster.
package localenv

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/test/localcluster"
	"github.com/openwmco/wmco/test/machinesim"
	"github.com/openwmco/wmco/test/openshiftcrds"
	"github.com/openwmco/wmco/test/ovnsim"
	"github.com/openwmco/wmco/test/proc"
	"github.com/openwmco/wmco/test/testpayload"
	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// Namespace is where the operator runs unless Options.Namespace says
// otherwise.
const Namespace = "wmco-system"

// DNSIP is the cluster DNS address given to kubelets.
const DNSIP = "10.0.0.10"

// Options shape the environment.
type Options struct {
	// Hosts is how many simulated hosts to start (default 2).
	Hosts int
	// OperatorBinary is the operator to run; built from cmd/operator into
	// the work directory when empty.
	OperatorBinary string
	// OperatorArgs are added to the operator's flags.
	OperatorArgs []string
	// MaxParallelConfigurations is written to the WindowsNodeConfig
	// before the operator starts (0: the default, 10).
	MaxParallelConfigurations int32
	// Host tunes each simulated host's agent and kubelet.
	Host simagent.Options
	// BandwidthLimit per host in bytes/s (0: unlimited).
	BandwidthLimit int64
	// PayloadFileSize makes each payload file of the fake payload this
	// large (0: small).
	PayloadFileSize int64
	// PayloadDir, when set, is a payload the operator loads as its
	// --payload-dir (such as payload/ as make payload builds it) instead
	// of a fake one written into Dir.
	PayloadDir string
	// APIServerVersion, when set, is the version kube-apiserver reports
	// (see localcluster.Options.APIServerVersion).
	APIServerVersion string
	// KubeletProxy lets the API server reach the simulated kubelets (the
	// node proxy, /api/v1/nodes/<node>/proxy/...; see
	// localcluster.Options.KubeletProxy).
	KubeletProxy bool
	// ExtraAPIServerArgs are appended to kube-apiserver's flags (such as
	// an audit log's).
	ExtraAPIServerArgs []string
	// Log receives progress lines; nil discards.
	Log io.Writer
	// MachinePlatform, when set, makes the cluster serve the Machine API
	// and run a simulated cloud of that platform (Env.Cloud: AWS, Azure,
	// VSphere or None) whose Windows MachineSets the operator serves.
	MachinePlatform configv1.PlatformType
	// CloudLog receives the simulated cloud's log; nil discards.
	CloudLog io.Writer
	// HostLogger, when set, gives the logger of the simulated host of
	// each name (winsim.Options.Logger): connections, commands and
	// uploads at debug level (the benchmark times the join's phases by
	// them).
	HostLogger func(name string) *slog.Logger
	// Namespace is the operator's namespace (default Namespace).
	Namespace string
	// Install, when set, installs the operator's CRDs, namespace and RBAC
	// in place of config/crd/bases (e.g. a rendered kustomize overlay) and
	// returns the kubeconfig the operator runs with; empty means the
	// cluster admin's.
	Install func(ctx context.Context, c *localcluster.Cluster, namespace string) (kubeconfig string, err error)
	// KeepLogsIn, when set, is a directory Stop copies the operator's log
	// files (*.log of the work directory, one per start) into before it
	// removes the work directory.
	KeepLogsIn string
}

// Host is one simulated Windows host.
type Host struct {
	*simagent.Node
	// Name is its hostname in lower case, the Node's name.
	Name string
	// IP is the loopback address its SSH server listens on.
	IP   string
	Port int
}

// InventoryEntry is the host's value in the windows-instances ConfigMap.
func (h *Host) InventoryEntry() string {
	return "username=Administrator\nport=" + strconv.Itoa(h.Port)
}

// Env is a running environment.
type Env struct {
	Cluster   *localcluster.Cluster
	Client    client.Client
	Clientset *kubernetes.Clientset
	Hosts     []*Host
	// Dir holds the payload, the operator's log and binary.
	Dir string
	// PayloadDir is the operator's --payload-dir; Payload the manifest it
	// loads from there.
	PayloadDir string
	Payload    *payload.Manifest
	// OperatorLog is the operator's log file.
	OperatorLog string
	// MetricsURL serves the operator's Prometheus metrics (plain HTTP on
	// loopback).
	MetricsURL string
	// KeyPEM is the SSH private key every host accepts.
	KeyPEM []byte
	// Namespace is the operator's namespace.
	Namespace string
	// Kubeconfig is what the operator authenticates with.
	Kubeconfig string
	// Cloud is the simulated cloud (Options.MachinePlatform), or nil.
	Cloud *machinesim.Cloud

	signer   ssh.Signer
	opts     Options
	operator *Operator
	// operatorBinary is the binary started last; operatorStarts counts
	// the starts.
	operatorBinary string
	operatorStarts int

	// The supervisor restarts the operator when it dies, as a
	// Deployment's kubelet would; mu guards what it shares with callers.
	mu sync.Mutex
	// stopped: the operator was stopped on purpose (StopOperator, Stop):
	// no restart until RestartOperator.
	stopped bool
	// killedAt is operatorStarts when KillOperator last ran: the
	// supervisor's restart is the start after it.
	killedAt int
	// restarts counts the supervisor's restarts.
	restarts int
	// started is closed and replaced at each start.
	started chan struct{}
	// done ends the supervisor (Stop).
	done chan struct{}
	// stopOVN stops the hybrid overlay subnet allocator, if started.
	stopOVN func()
}

// Restart back-off of the supervisor, as a kubelet's CrashLoopBackOff but
// shorter (a Deployment's starts at 10 s and doubles to 5 min): the first
// restart after supervisorBackoff, doubling up to supervisorMaxBackoff; a
// process that ran supervisorResetAfter starts the back-off anew.
const (
	supervisorBackoff    = time.Second
	supervisorMaxBackoff = 30 * time.Second
	supervisorResetAfter = time.Minute
)

func (e *Env) logf(format string, args ...any) {
	if e.opts.Log != nil {
		fmt.Fprintf(e.opts.Log, format+"\n", args...)
	}
}

// Start brings everything up. On error, whatever started is stopped.
func Start(ctx context.Context, o Options) (_ *Env, retErr error) {
	if o.Hosts == 0 {
		o.Hosts = 2
	}
	dir, err := os.MkdirTemp("", "wmco-localenv-")
	if err != nil {
		return nil, err
	}
	if o.Namespace == "" {
		o.Namespace = Namespace
	}
	e := &Env{Dir: dir, opts: o, Namespace: o.Namespace}
	defer func() {
		if retErr != nil {
			_ = e.Stop()
		}
	}()

	e.logf("Starting the local control plane (etcd, kube-apiserver, kube-controller-manager)")
	if e.Cluster, err = localcluster.Start(ctx, localcluster.Options{
		NodeMonitorGracePeriod: 10 * time.Second, NodeMonitorPeriod: 2 * time.Second, APIServerVersion: o.APIServerVersion,
		KubeletProxy: o.KubeletProxy, ExtraAPIServerArgs: o.ExtraAPIServerArgs,
	}); err != nil {
		return nil, err
	}
	e.Kubeconfig = e.Cluster.KubeconfigPath
	if o.Install != nil {
		kc, err := o.Install(ctx, e.Cluster, o.Namespace)
		if err != nil {
			return nil, fmt.Errorf("install the operator's manifests: %w", err)
		}
		if kc != "" {
			e.Kubeconfig = kc
		}
	} else if err := localcluster.InstallCRDs(ctx, e.Cluster.Config, "config/crd/bases"); err != nil {
		return nil, err
	}
	if o.MachinePlatform != "" {
		// The Machine API's and the cluster configuration's CRDs, early:
		// the API server holds creates of their objects for 2 s after.
		if err := openshiftcrds.Install(ctx, e.Cluster.Config, openshiftcrds.AllFiles()...); err != nil {
			return nil, err
		}
	}
	scheme, err := core.NewScheme()
	if err != nil {
		return nil, err
	}
	// A client that can also watch, for tests that follow objects.
	if e.Client, err = client.NewWithWatch(e.Cluster.Config, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	if e.Clientset, err = kubernetes.NewForConfig(e.Cluster.Config); err != nil {
		return nil, err
	}

	if err := e.writeKeyAndNamespace(ctx); err != nil {
		return nil, err
	}
	if e.PayloadDir = o.PayloadDir; e.PayloadDir == "" {
		e.PayloadDir = filepath.Join(dir, "payload")
		if e.Payload, err = testpayload.Write(e.PayloadDir, testpayload.Options{FileSize: o.PayloadFileSize}); err != nil {
			return nil, err
		}
	} else {
		found, _, err := payload.FindDir(e.PayloadDir)
		if err != nil {
			return nil, err
		}
		if e.Payload, err = payload.Load(found); err != nil {
			return nil, err
		}
	}
	if _, err := e.AddHosts(o.Hosts); err != nil {
		return nil, err
	}
	// The CRDs are seconds old: wait until the API server no longer holds
	// creates of their objects, so that no first create (the simulated
	// cloud's, the operator's, a test's) takes 2 s longer than the rest.
	if err := localcluster.AwaitCRDsSettled(ctx, e.Cluster.Config); err != nil {
		return nil, err
	}
	if o.MachinePlatform != "" {
		if err := e.startCloud(ctx); err != nil {
			return nil, err
		}
	}
	if o.MaxParallelConfigurations > 0 {
		if err := e.Client.Create(ctx, &wmcov1.WindowsNodeConfig{
			ObjectMeta: metav1.ObjectMeta{Name: wmcov1.WindowsNodeConfigName},
			Spec:       wmcov1.WindowsNodeConfigSpec{MaxParallelConfigurations: o.MaxParallelConfigurations},
		}); err != nil {
			return nil, err
		}
	}
	if err := e.startOperator(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Env) writeKeyAndNamespace(ctx context.Context) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	e.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if e.signer, err = ssh.NewSignerFromKey(priv); err != nil {
		return err
	}
	// Install may have created the namespace.
	if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.Namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return e.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: wmcov1.DefaultCredentialsSecretName, Namespace: e.Namespace},
		Data:       map[string][]byte{wmcov1.DefaultCredentialsSecretKey: e.KeyPEM},
	})
}

// AddHosts starts n more simulated hosts.
func (e *Env) AddHosts(n int) ([]*Host, error) {
	var added []*Host
	for range n {
		i := len(e.Hosts) + 1
		ip := fmt.Sprintf("127.0.%d.%d", 100+i/250, 1+i%250)
		name := fmt.Sprintf("win-%d", i)
		var logger *slog.Logger
		if e.opts.HostLogger != nil {
			logger = e.opts.HostLogger(name)
		}
		h, err := winsim.Start(context.Background(), winsim.Options{
			Hostname: strings.ToUpper(name), ListenAddress: ip + ":0",
			IPAddresses: []netip.Addr{netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", i%250+1))},
			Logger:      logger,
		})
		if err != nil {
			return nil, fmt.Errorf("start simulated host %s: %w", name, err)
		}
		h.AuthorizeKey("Administrator", e.signer.PublicKey())
		if e.opts.BandwidthLimit > 0 {
			h.SetBandwidth(e.opts.BandwidthLimit)
		}
		node, err := simagent.Install(h, e.hostOptions())
		if err != nil {
			_ = h.Close()
			return nil, err
		}
		host := &Host{Node: node, Name: name, IP: ip, Port: h.Port()}
		e.Hosts = append(e.Hosts, host)
		added = append(added, host)
		e.logf("Simulated Windows host %s listening on %s:%d (Windows Server build %d)", name, ip, h.Port(), h.Facts().OSBuild)
	}
	return added, nil
}

// hostOptions tune the node software of every simulated host and VM.
func (e *Env) hostOptions() simagent.Options {
	opts := e.opts.Host
	if opts.AgentRunInterval == 0 {
		opts.AgentRunInterval = 2 * time.Second
	}
	if opts.KubeletLeaseDuration == 0 {
		opts.KubeletLeaseDuration = 8 * time.Second
	}
	if opts.KubeletStatusInterval == 0 {
		opts.KubeletStatusInterval = 4 * time.Second
	}
	if opts.RebootDownTime == 0 {
		opts.RebootDownTime = 2 * time.Second
	}
	// The kubelet reports the version the payload's kubelet.exe was built
	// with, as it would on Windows.
	if f, ok := e.Payload.File(payload.KubeletPath); ok && f.Version != "" && opts.KubeletBinaries == nil {
		opts.KubeletBinaries = map[string]string{f.SHA256: f.Version}
	}
	return opts
}

// startCloud starts a simulated cloud of the platform (Start installed its
// CRDs), before the operator, which reads the platform once at start.
func (e *Env) startCloud(ctx context.Context) error {
	e.logf("Starting a simulated %s cloud (Machine API, cloud controller manager)", e.opts.MachinePlatform)
	w := e.opts.CloudLog
	if w == nil {
		w = io.Discard
	}
	cloud, err := machinesim.Start(ctx, machinesim.Options{
		Config: e.Cluster.Config, Platform: e.opts.MachinePlatform, Host: e.hostOptions(), Log: w,
	})
	if err != nil {
		return err
	}
	e.Cloud = cloud
	e.opts.OperatorArgs = append(e.opts.OperatorArgs, "--machine-ssh-port="+strconv.Itoa(cloud.SSHPort()))
	return e.openShiftConfig(ctx)
}

// openShiftConfig gives the cluster, which the Infrastructure CRD makes
// OpenShift in the operator's eyes, the rest of an OVN-Kubernetes
// OpenShift cluster's configuration (networks with a hybrid overlay, the
// DNS operator's Service, the kubelet client CA, the node-bootstrapper),
// and a stand-in for OVN's hybrid overlay subnet allocator.
func (e *Env) openShiftConfig(ctx context.Context) error {
	if err := openshiftcrds.InstallNodeBootstrapper(ctx, e.Cluster.Config); err != nil {
		return err
	}
	hybrid := openshiftcrds.DefaultHybridOverlay
	if _, err := openshiftcrds.NewOVNCluster(ctx, e.Cluster.Config, openshiftcrds.OVNOptions{
		APIServerInternalURL: e.Cluster.Host, HybridOverlay: &hybrid, DNSIP: DNSIP,
	}); err != nil {
		return err
	}
	// The allocator lives as long as the environment (Close stops it),
	// not as long as the context that started it: a test suite starts
	// the environment in a setup step whose context ends with the step.
	stop, err := ovnsim.Start(context.WithoutCancel(ctx), e.Cluster.Config, ovnsim.Options{})
	if err != nil {
		return err
	}
	e.stopOVN = stop
	return nil
}

// startOperator runs the operator binary with a kubeconfig and waits until
// it is ready.
func (e *Env) startOperator(ctx context.Context) error {
	bin := e.opts.OperatorBinary
	if bin == "" && e.operatorBinary != "" {
		bin = e.operatorBinary
	}
	if bin == "" {
		bin = filepath.Join(e.Dir, "operator")
		e.logf("Building the operator")
		root, err := proc.RepoRoot()
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/operator")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build operator: %w\n%s", err, out)
		}
	}
	e.logf("Starting the operator")
	e.mu.Lock()
	e.operatorBinary = bin
	e.operatorStarts++
	starts := e.operatorStarts
	e.mu.Unlock()
	op, err := StartOperatorAs(ctx, bin, e.Kubeconfig, e.Namespace, e.PayloadDir, filepath.Join(e.Dir, operatorLogName(starts)), 60*time.Second, e.opts.OperatorArgs...)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.operator, e.MetricsURL, e.OperatorLog = op, op.MetricsURL, op.Log
	e.stopped = false
	if e.started == nil {
		e.started, e.done = make(chan struct{}), make(chan struct{})
	}
	close(e.started)
	e.started = make(chan struct{})
	done := e.done
	e.mu.Unlock()
	e.logf("Operator ready: %s (log: %s)", op.Args(), e.OperatorLog)
	go e.supervise(op, done)
	return nil
}

// supervise waits for op to end and, unless it was stopped on purpose,
// starts the operator again after a back-off, as the kubelet restarts a
// Deployment's container that dies: the same binary and flags, a new log
// file. It tries until a start succeeds or the environment stops.
func (e *Env) supervise(op *Operator, done chan struct{}) {
	began := time.Now()
	select {
	case <-op.exited():
	case <-done:
		return
	}
	e.mu.Lock()
	if e.stopped || e.operator != op {
		e.mu.Unlock()
		return
	}
	e.mu.Unlock()
	backoff := supervisorBackoff
	if ran := time.Since(began); ran < supervisorResetAfter {
		// A crash loop: back off longer with each quick death.
		e.mu.Lock()
		for range min(e.restarts, 5) {
			backoff = min(2*backoff, supervisorMaxBackoff)
		}
		e.mu.Unlock()
	}
	for {
		e.logf("Operator exited (%v) after %s; restarting it in %s, as a Deployment would", op.ExitErr(), time.Since(began).Round(time.Second), backoff)
		select {
		case <-time.After(backoff):
		case <-done:
			return
		}
		e.mu.Lock()
		if e.stopped {
			e.mu.Unlock()
			return
		}
		e.restarts++
		e.mu.Unlock()
		if err := e.startOperator(context.Background()); err != nil {
			e.logf("Operator restart failed: %v", err)
			backoff = min(2*backoff, supervisorMaxBackoff)
			continue
		}
		return
	}
}

// SetInventory writes the windows-instances ConfigMap listing hosts.
func (e *Env) SetInventory(ctx context.Context, hosts ...*Host) error {
	data := map[string]string{}
	for _, h := range hosts {
		data[h.IP] = h.InventoryEntry()
	}
	return e.SetInventoryData(ctx, data)
}

// SetInventoryData writes the windows-instances ConfigMap with data as its
// entries (address to entry, as Host.InventoryEntry spells one), creating
// it if needed: for lists that hold more than simulated hosts, such as
// addresses where nothing answers.
func (e *Env) SetInventoryData(ctx context.Context, data map[string]string) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: wmcov1.InventoryConfigMapName, Namespace: e.Namespace}}
	err := e.Client.Get(ctx, client.ObjectKeyFromObject(cm), cm)
	switch {
	case err == nil:
		cm.Data = data
		return e.Client.Update(ctx, cm)
	case client.IgnoreNotFound(err) == nil:
		cm.Data = data
		return e.Client.Create(ctx, cm)
	default:
		return err
	}
}

// Stop ends the operator, the hosts and the control plane and removes the
// work directory.
func (e *Env) Stop() error {
	var errs []error
	e.StopOperator()
	e.mu.Lock()
	if e.done != nil {
		close(e.done)
		e.done = nil
	}
	e.mu.Unlock()
	if e.Cloud != nil {
		e.Cloud.Stop()
	}
	if e.stopOVN != nil {
		e.stopOVN()
	}
	for _, h := range e.Hosts {
		if err := h.Host.Close(); err != nil && !errors.Is(err, winsim.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if e.Cluster != nil {
		if err := e.Cluster.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if e.opts.KeepLogsIn != "" {
		if err := copyLogs(e.Dir, e.opts.KeepLogsIn); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(e.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// operatorLogName is the log file of the operator's nth start: each run
// keeps its own log.
func operatorLogName(n int) string {
	if n <= 1 {
		return "operator.log"
	}
	return fmt.Sprintf("operator.%d.log", n)
}

// OperatorLogs are the log files of every start of the operator, the
// first start's first (OperatorLog is the last one's).
func (e *Env) OperatorLogs() []string {
	e.mu.Lock()
	n := e.operatorStarts
	e.mu.Unlock()
	logs := make([]string, 0, n)
	for i := 1; i <= n; i++ {
		logs = append(logs, filepath.Join(e.Dir, operatorLogName(i)))
	}
	return logs
}

// copyLogs copies the *.log files of dir into to, which it creates.
func copyLogs(dir, to string) error {
	logs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(logs) == 0 {
		return err
	}
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	for _, name := range logs {
		data, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, filepath.Base(name)), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// StopOperator ends the operator process (SIGTERM, then SIGKILL) on
// purpose: it is not restarted until RestartOperator.
func (e *Env) StopOperator() {
	e.mu.Lock()
	e.stopped = true
	op := e.operator
	e.mu.Unlock()
	if op != nil {
		op.Stop()
	}
}

// KillOperator ends the operator process with SIGKILL, as an OOM kill or
// a node failure would; the supervisor restarts it after its back-off
// (RestartOperator waits for that).
func (e *Env) KillOperator() {
	e.mu.Lock()
	e.killedAt = e.operatorStarts
	op := e.operator
	e.mu.Unlock()
	if op != nil {
		op.Kill()
	}
}

// RestartOperator starts the operator again with the same binary and
// flags: after StopOperator it starts it; after KillOperator it waits for
// the supervisor's restart, as a Deployment's pod comes back.
func (e *Env) RestartOperator(ctx context.Context) error {
	e.mu.Lock()
	stopped, killed := e.stopped, e.killedAt == e.operatorStarts && e.operatorStarts > 0
	running := e.operator != nil && !e.operator.Exited()
	e.mu.Unlock()
	switch {
	case stopped:
		return e.startOperator(ctx)
	case killed:
		for {
			e.mu.Lock()
			restarted, started := e.operatorStarts > e.killedAt && e.operator != nil && !e.operator.Exited(), e.started
			e.mu.Unlock()
			if restarted {
				return nil
			}
			select {
			case <-started:
			case <-ctx.Done():
				return fmt.Errorf("wait for the operator's restart: %w", ctx.Err())
			}
		}
	case running:
		return errors.New("restart operator: it is still running")
	default:
		// It died on its own: the supervisor brings it back.
		e.mu.Lock()
		e.killedAt = e.operatorStarts
		e.mu.Unlock()
		return e.RestartOperator(ctx)
	}
}

// OperatorExited reports whether the operator is down for good: stopped
// on purpose (a death is followed by the supervisor's restart).
func (e *Env) OperatorExited() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.operator == nil || (e.stopped && e.operator.Exited())
}

// OperatorRestarts counts the supervisor's restarts of the operator after
// it died.
func (e *Env) OperatorRestarts() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.restarts
}

// OperatorPID is the operator process's ID (0 when it is not running).
func (e *Env) OperatorPID() int {
	e.mu.Lock()
	op := e.operator
	e.mu.Unlock()
	if op == nil {
		return 0
	}
	return op.PID()
}
