// Package localcluster runs a real Kubernetes control plane on loopback for
// tests and the demo: etcd, kube-apiserver and kube-controller-manager,
// configured as a production cluster would be (Node,RBAC authorization,
// NodeRestriction admission, bootstrap-token authentication, certificates
// signed by kube-controller-manager's csrsigning controller).
//
// The binaries come from hack/setup-envtest.sh, which builds them from the
// Go module proxy into bin/k8s/<version>/.
package localcluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/openwmco/wmco/test/proc"
)

// DefaultKubernetesVersion is the control-plane version the project pins.
const DefaultKubernetesVersion = "v1.37.2"

// BinDirEnv overrides where the control-plane binaries are looked up.
const BinDirEnv = "WMCO_CONTROLPLANE_BIN"

// ServiceCIDR is the cluster's service network.
const ServiceCIDR = "10.0.0.0/24"

// ClusterCIDR is the pod network; node IPAM gives each Node a /24 of it
// (spec.podCIDR), as on a kubeadm cluster.
const ClusterCIDR = "10.132.0.0/14"

// DefaultControllers are the kube-controller-manager controllers that run.
// csrapproving is left out on purpose: approving kubelet CSRs is the
// operator's job. The disruption controller computes PodDisruptionBudgets'
// status (disruptionsAllowed), without which every eviction of a covered
// pod is refused, as in a cluster where it is not yet observed.
var DefaultControllers = []string{
	"certificatesigningrequest-signing-controller",
	"certificatesigningrequest-cleaner-controller",
	"token-cleaner-controller",
	"node-lifecycle-controller",
	"garbage-collector-controller",
	"serviceaccount-token-controller",
	"serviceaccount-controller",
	"namespace-controller",
	"node-ipam-controller",
	"disruption-controller",
}

// Options configure a control plane. The zero value is ready to use.
type Options struct {
	// BinDir holds etcd, kube-apiserver, kube-controller-manager and
	// kubectl. Default: $WMCO_CONTROLPLANE_BIN, else
	// <repository>/bin/k8s/<DefaultKubernetesVersion>.
	BinDir string
	// Dir is where certificates, data and logs go; a temporary directory
	// (removed by Stop) when empty.
	Dir string
	// NodeMonitorGracePeriod is how long a node may miss Lease renewals
	// before it is marked NotReady (kube-controller-manager default: 50s).
	NodeMonitorGracePeriod time.Duration
	// StartTimeout bounds the start-up (default 90s).
	StartTimeout time.Duration
	// NodeMonitorPeriod is how often node health is checked
	// (kube-controller-manager default: 5s).
	NodeMonitorPeriod time.Duration
	// ExtraAPIServerArgs are appended to kube-apiserver's flags.
	ExtraAPIServerArgs []string
	// NoClusterInfo skips publishing kube-public/cluster-info, which Start
	// otherwise does exactly as kubeadm does (readable by system:anonymous
	// only), for tests of a cluster that has none.
	NoClusterInfo bool
	// APIServerVersion, when set, runs the kube-apiserver linked to report
	// this Kubernetes version (see [APIServerBinary]) instead of the
	// normal one, e.g. "v1.36.9".
	APIServerVersion string
	// KubeletProxy lets the API server reach kubelets, as `kubectl logs`,
	// `exec` and the node proxy (`/api/v1/nodes/<node>/proxy/...`) need:
	// kube-apiserver gets a kubelet client certificate
	// (CN=kube-apiserver-kubelet-client, O=system:masters, signed by the
	// cluster CA, as kubeadm issues it), prefers InternalIP addresses,
	// and dials kubelets through an HTTP CONNECT egress proxy (its
	// EgressSelectorConfiguration) that delivers every connection to the
	// same port on 127.0.0.1. The API server refuses to proxy to a Node
	// whose address is not global unicast (loopback included), so a
	// simulated Node reports a documentation address (192.0.2.0/24) and
	// its kubelet listens on a port of its own on 127.0.0.1.
	KubeletProxy bool
	// Controllers are the kube-controller-manager controllers that run
	// (default DefaultControllers), e.g. DefaultControllers and
	// "certificatesigningrequest-approving-controller" for Kubernetes'
	// own kubelet CSR approver.
	Controllers []string
}

// APIServerBinary is the kube-apiserver in binDir that reports version:
// kube-apiserver-as-<version>, which hack/setup-envtest.sh links from the
// same sources for each of APISERVER_REPORTED_VERSIONS (by default v1.36.9
// and v1.38.0); the normal kube-apiserver when version is empty. The
// reported version is also the server's emulation version, so a version
// below the build's serves that release's APIs and feature defaults.
func APIServerBinary(binDir, version string) string {
	if version == "" {
		return filepath.Join(binDir, "kube-apiserver")
	}
	return filepath.Join(binDir, "kube-apiserver-as-"+version)
}

// Cluster is a running control plane.
type Cluster struct {
	// Config authenticates as a cluster admin (group system:masters).
	Config *rest.Config
	// CACert is the cluster CA (PEM) that signs client, kubelet and
	// serving certificates.
	CACert []byte
	// Host is the API server URL.
	Host string
	// Dir holds the certificates, etcd data, logs and kubeconfig.
	Dir string
	// KubeconfigPath is an admin kubeconfig file.
	KubeconfigPath string
	// BinDir is where the binaries were found.
	BinDir string

	ca      *certAuthority
	tempDir bool
	timeout time.Duration
	apiArgs []string
	// kcmHealth is kube-controller-manager's /healthz URL.
	kcmHealth string
	// controllers are kube-controller-manager's (Options.Controllers).
	controllers []string
	// kubeletProxy is the egress proxy of Options.KubeletProxy, nil
	// without it.
	kubeletProxy *kubeletProxy

	// mu guards procs and apiVersion against a restart racing Stop.
	mu         sync.Mutex
	procs      []*process
	apiVersion string
}

type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// FindBinDir returns the directory holding the control-plane binaries.
func FindBinDir() (string, error) {
	if d := os.Getenv(BinDirEnv); d != "" {
		return d, nil
	}
	root, err := proc.RepoRoot()
	if err != nil {
		return "", fmt.Errorf("%w; set %s", err, BinDirEnv)
	}
	return filepath.Join(root, "bin", "k8s", DefaultKubernetesVersion), nil
}

// Start runs etcd, kube-apiserver and kube-controller-manager and returns
// once the API server is ready and the controller-manager is healthy.
//
// The components listen on ports free when Start picks them
// (proc.FreePorts), which another process may take before a component
// binds it (the tests of many packages run at once and dial out from the
// same range). A start that fails for a port taken meanwhile is started
// again on new ports, up to startAttempts times in all, when Start made
// the directory (Options.Dir empty): a caller's directory holds what the
// failed start left.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	for attempt := 1; ; attempt++ {
		c, err := start(ctx, opts)
		if err == nil || attempt == startAttempts || opts.Dir != "" || ctx.Err() != nil || !portTaken(err) {
			return c, err
		}
	}
}

// startAttempts bounds Start's attempts when a port was taken.
const startAttempts = 3

// portTaken tells whether a start failed because a component could not
// bind its port: the component's log, which the error quotes, says so.
func portTaken(err error) bool {
	return err != nil && strings.Contains(err.Error(), "address already in use")
}

// start is one attempt of Start.
func start(ctx context.Context, opts Options) (_ *Cluster, retErr error) {
	binDir := opts.BinDir
	if binDir == "" {
		d, err := FindBinDir()
		if err != nil {
			return nil, err
		}
		binDir = d
	}
	for _, b := range []string{"etcd", "kube-controller-manager"} {
		if err := checkBinary(filepath.Join(binDir, b)); err != nil {
			return nil, err
		}
	}
	if err := checkBinary(APIServerBinary(binDir, opts.APIServerVersion)); err != nil {
		return nil, err
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 90 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	c := &Cluster{Dir: opts.Dir, BinDir: binDir, timeout: timeout, apiVersion: opts.APIServerVersion, controllers: opts.Controllers}
	if c.controllers == nil {
		c.controllers = DefaultControllers
	}
	if c.Dir == "" {
		d, err := os.MkdirTemp("", "wmco-localcluster-")
		if err != nil {
			return nil, err
		}
		c.Dir, c.tempDir = d, true
	}
	defer func() {
		if retErr != nil {
			_ = c.Stop()
		}
	}()

	ports, err := proc.FreePorts(4)
	if err != nil {
		return nil, err
	}
	etcdPort, etcdPeerPort, apiPort, kcmPort := ports[0], ports[1], ports[2], ports[3]
	c.Host = "https://127.0.0.1:" + strconv.Itoa(apiPort)

	if err := c.writePKI(); err != nil {
		return nil, fmt.Errorf("write certificates: %w", err)
	}

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	if err := c.run("etcd", filepath.Join(binDir, "etcd"),
		"--name=default",
		"--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls=http://127.0.0.1:"+strconv.Itoa(etcdPeerPort),
		"--initial-advertise-peer-urls=http://127.0.0.1:"+strconv.Itoa(etcdPeerPort),
		"--initial-cluster=default=http://127.0.0.1:"+strconv.Itoa(etcdPeerPort),
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	); err != nil {
		return nil, err
	}

	p := func(name string) string { return filepath.Join(c.Dir, name) }
	apiArgs := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--endpoint-reconciler-type=none",
		"--tls-cert-file=" + p("apiserver.crt"),
		"--tls-private-key-file=" + p("apiserver.key"),
		"--client-ca-file=" + p("ca.crt"),
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--enable-bootstrap-token-auth=true",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p("sa.pub"),
		"--service-account-signing-key-file=" + p("sa.key"),
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--allow-privileged=true",
		"--requestheader-client-ca-file=" + p("front-proxy-ca.crt"),
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + p("front-proxy-client.crt"),
		"--proxy-client-key-file=" + p("front-proxy-client.key"),
		"--cert-dir=" + p("apiserver-certs"),
		// On SIGTERM, answer new requests with 429 and Retry-After (which
		// client-go honours) until the requests in flight are done, then
		// give long-running watches 2s instead of the request timeout
		// (60s): a stop or restart takes seconds.
		"--shutdown-send-retry-after=true",
	}
	if opts.KubeletProxy {
		kp, err := startKubeletProxy(c.Dir)
		if err != nil {
			return nil, err
		}
		c.kubeletProxy = kp
		apiArgs = append(apiArgs,
			"--kubelet-client-certificate="+p("apiserver-kubelet-client.crt"),
			"--kubelet-client-key="+p("apiserver-kubelet-client.key"),
			"--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
			"--egress-selector-config-file="+kp.configPath)
	}
	apiArgs = append(apiArgs, opts.ExtraAPIServerArgs...)
	c.apiArgs = apiArgs
	if err := c.run("kube-apiserver", APIServerBinary(binDir, opts.APIServerVersion), c.apiArgs...); err != nil {
		return nil, err
	}

	c.Config = &rest.Config{
		Host: c.Host,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   c.CACert,
			CertFile: p("admin.crt"),
			KeyFile:  p("admin.key"),
		},
		QPS:   200,
		Burst: 400,
	}
	if err := c.writeKubeconfig(p("admin.kubeconfig"), "admin", p("admin.crt"), p("admin.key")); err != nil {
		return nil, err
	}
	c.KubeconfigPath = p("admin.kubeconfig")
	if err := c.writeKubeconfig(p("kcm.kubeconfig"), "kube-controller-manager", p("kcm.crt"), p("kcm.key")); err != nil {
		return nil, err
	}

	if err := c.waitHealthy(ctx, "kube-apiserver", c.Host+"/readyz", c.adminTransport()); err != nil {
		return nil, err
	}
	if !opts.NoClusterInfo {
		cs, err := kubernetes.NewForConfig(c.Config)
		if err != nil {
			return nil, err
		}
		if err := publishClusterInfo(ctx, cs, c.Host, c.CACert); err != nil {
			return nil, err
		}
	}

	kcmArgs := []string{
		"--kubeconfig=" + p("kcm.kubeconfig"),
		"--authentication-kubeconfig=" + p("kcm.kubeconfig"),
		"--authorization-kubeconfig=" + p("kcm.kubeconfig"),
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(kcmPort),
		"--cert-dir=" + p("kcm-certs"),
		"--cluster-signing-cert-file=" + p("ca.crt"),
		"--cluster-signing-key-file=" + p("ca.key"),
		"--root-ca-file=" + p("ca.crt"),
		"--service-account-private-key-file=" + p("sa.key"),
		"--use-service-account-credentials=true",
		"--leader-elect=false",
		"--controllers=" + strings.Join(c.controllers, ","),
		"--allocate-node-cidrs=true",
		"--cluster-cidr=" + ClusterCIDR,
		"--node-cidr-mask-size-ipv4=24",
		"--service-cluster-ip-range=" + ServiceCIDR,
	}
	if opts.NodeMonitorGracePeriod > 0 {
		kcmArgs = append(kcmArgs, "--node-monitor-grace-period="+opts.NodeMonitorGracePeriod.String())
	}
	if opts.NodeMonitorPeriod > 0 {
		kcmArgs = append(kcmArgs, "--node-monitor-period="+opts.NodeMonitorPeriod.String())
	}
	if err := c.run("kube-controller-manager", filepath.Join(binDir, "kube-controller-manager"), kcmArgs...); err != nil {
		return nil, err
	}
	insecure := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // loopback health check of a self-signed endpoint
	c.kcmHealth = "https://127.0.0.1:" + strconv.Itoa(kcmPort) + "/healthz"
	if err := c.waitHealthy(ctx, "kube-controller-manager", c.kcmHealth, insecure); err != nil {
		return nil, err
	}
	return c, nil
}

// UserConfig returns a client config that authenticates with a client
// certificate, signed by the cluster CA, for the given user and groups.
func (c *Cluster) UserConfig(user string, groups ...string) (*rest.Config, error) {
	kp, err := c.ca.issue(leafOptions{commonName: user, organization: groups, client: true, validFor: 24 * time.Hour})
	if err != nil {
		return nil, err
	}
	return &rest.Config{
		Host:            c.Host,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CACert, CertData: kp.certPEM, KeyData: kp.keyPEM},
	}, nil
}

// Kubectl returns the path of the kubectl binary built with the plane.
func (c *Cluster) Kubectl() string { return filepath.Join(c.BinDir, "kubectl") }

// APIServerVersion is the version the running kube-apiserver was chosen to
// report (Options.APIServerVersion or the last [Cluster.RestartAPIServer]);
// empty for the normal binary.
func (c *Cluster) APIServerVersion() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.apiVersion
}

// RestartAPIServer stops kube-apiserver and starts it again with the binary
// that reports version (see [APIServerBinary]; empty for the normal one),
// on the same address, with the same certificates, flags and etcd data,
// and returns once it is ready. Clients keep their URL and CA: their
// requests fail while it is down and succeed again after; watches end and
// are re-established by informers. kube-controller-manager keeps running
// and reconnects. As with an upgrade of a real control plane, the objects
// stay; what the server serves follows the new version.
func (c *Cluster) RestartAPIServer(ctx context.Context, version string) error {
	bin := APIServerBinary(c.BinDir, version)
	if err := checkBinary(bin); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.IndexFunc(c.procs, func(pr *process) bool { return pr.name == "kube-apiserver" })
	if i < 0 {
		return errors.New("restart kube-apiserver: the control plane is not running")
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// kube-controller-manager's /healthz answers before its controllers
	// are built, and each one's check joins it once all are. Until then an
	// API server outage makes it exit (it cannot create a controller's
	// client), so the restart waits for them.
	var built []string
	for _, name := range c.controllers {
		built = append(built, "[+]"+name+" ok")
	}
	insecure := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // loopback health check of a self-signed endpoint
	if err := c.waitHealthy(ctx, "kube-controller-manager", c.kcmHealth+"?verbose=1", insecure, built...); err != nil {
		return err
	}
	if err := c.procs[i].stop(); err != nil {
		return fmt.Errorf("stop kube-apiserver: %w", err)
	}
	pr, err := c.spawn("kube-apiserver", bin, true, c.apiArgs...)
	if err != nil {
		// The plane is left without an API server; Stop still ends the
		// rest, and the stopped process is a no-op to stop again.
		return err
	}
	c.procs[i] = pr
	c.apiVersion = version
	return c.waitHealthy(ctx, "kube-apiserver", c.Host+"/readyz", c.adminTransport())
}

// checkBinary reports a missing control-plane binary with the command that
// builds it.
func checkBinary(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("control-plane binary %s not found in %s: run `make setup-envtest` (hack/setup-envtest.sh; APISERVER_REPORTED_VERSIONS lists the kube-apiserver-as-<version> it links) first", filepath.Base(path), filepath.Dir(path))
	}
	return nil
}

// PIDs are the process IDs of the running control-plane processes by
// name (etcd, kube-apiserver, kube-controller-manager), e.g. for reading
// their CPU time in /proc.
func (c *Cluster) PIDs() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.procs))
	for _, pr := range c.procs {
		if pr.cmd.Process != nil {
			out[pr.name] = pr.cmd.Process.Pid
		}
	}
	return out
}

// Stop ends the processes (controller-manager, API server, etcd, in that
// order) and removes the directory when Start created it.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for i := len(c.procs) - 1; i >= 0; i-- {
		if err := c.procs[i].stop(); err != nil {
			errs = append(errs, err)
		}
	}
	c.procs = nil
	if c.kubeletProxy != nil {
		c.kubeletProxy.close()
		c.kubeletProxy = nil
	}
	if c.tempDir {
		if err := os.RemoveAll(c.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Cluster) writePKI() error {
	ca, err := newCA("wmco-local-ca")
	if err != nil {
		return err
	}
	c.ca, c.CACert = ca, ca.certPEM
	frontCA, err := newCA("wmco-local-front-proxy-ca")
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"ca.crt": ca.certPEM, "ca.key": ca.keyPEM,
		"front-proxy-ca.crt": frontCA.certPEM,
	}
	_, svcNet, err := net.ParseCIDR(ServiceCIDR)
	if err != nil {
		return err
	}
	firstSvcIP := append(net.IP(nil), svcNet.IP.To4()...)
	firstSvcIP[3]++
	leaves := []struct {
		name string
		ca   *certAuthority
		opts leafOptions
	}{
		{"apiserver", ca, leafOptions{
			commonName: "kube-apiserver", server: true,
			ips:      []net.IP{net.ParseIP("127.0.0.1"), firstSvcIP},
			dnsNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		}},
		{"admin", ca, leafOptions{commonName: "wmco-admin", organization: []string{"system:masters"}, client: true}},
		{"kcm", ca, leafOptions{commonName: "system:kube-controller-manager", client: true}},
		{"front-proxy-client", frontCA, leafOptions{commonName: "front-proxy-client", client: true}},
		// The API server's identity towards kubelets (Options.KubeletProxy).
		{"apiserver-kubelet-client", ca, leafOptions{commonName: "kube-apiserver-kubelet-client", organization: []string{"system:masters"}, client: true}},
	}
	for _, l := range leaves {
		kp, err := l.ca.issue(l.opts)
		if err != nil {
			return err
		}
		files[l.name+".crt"], files[l.name+".key"] = kp.certPEM, kp.keyPEM
	}
	saKey, saKeyPEM, err := newKey()
	if err != nil {
		return err
	}
	saPubDER, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return err
	}
	files["sa.key"] = saKeyPEM
	files["sa.pub"] = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPubDER})
	return writeFiles(c.Dir, files)
}

func (c *Cluster) writeKubeconfig(path, user, certFile, keyFile string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CACert}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificate: certFile, ClientKey: keyFile}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: user}
	cfg.CurrentContext = "local"
	return clientcmd.WriteToFile(*cfg, path)
}

func (c *Cluster) adminTransport() http.RoundTripper {
	tlsCfg, err := rest.TLSConfigFor(c.Config)
	if err != nil {
		// The files were written by writePKI just before; a failure here
		// is a programming error, and the health check reports it.
		return errTransport{err}
	}
	return &http.Transport{TLSClientConfig: tlsCfg}
}

type errTransport struct{ err error }

func (t errTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, t.err }

func (c *Cluster) run(name, bin string, args ...string) error {
	pr, err := c.spawn(name, bin, false, args...)
	if err != nil {
		return err
	}
	c.procs = append(c.procs, pr)
	return nil
}

// spawn starts a process logging to <Dir>/<name>.log, after what the log
// holds when appendLog is set (a restart), in place of it otherwise.
func (c *Cluster) spawn(name, bin string, appendLog bool, args ...string) (*process, error) {
	logPath := filepath.Join(c.Dir, name+".log")
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appendLog {
		flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	logFile, err := os.OpenFile(logPath, flags, 0o600)
	if err != nil {
		return nil, err
	}
	if appendLog {
		_, _ = fmt.Fprintf(logFile, "=== restarted as %s\n", filepath.Base(bin))
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	proc.Detach(cmd)
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pr := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		pr.err = cmd.Wait()
		_ = logFile.Close()
		close(pr.done)
	}()
	return pr, nil
}

// waitHealthy polls a health endpoint until it answers 200 with a body
// holding each of want, a process exits, or ctx ends. Start-up is the one
// place that has to poll: nothing can be watched before the API server is
// up.
func (c *Cluster) waitHealthy(ctx context.Context, name, url string, rt http.RoundTripper, want ...string) error {
	client := &http.Client{Transport: rt, Timeout: 2 * time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		for _, pr := range c.procs {
			select {
			case <-pr.done:
				return fmt.Errorf("%s exited during start-up (%w); last lines of %s:\n%s", pr.name, pr.err, pr.log, proc.TailFile(pr.log, 20))
			default:
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			_ = resp.Body.Close()
			missing := slices.IndexFunc(want, func(w string) bool { return !bytes.Contains(body, []byte(w)) })
			if resp.StatusCode == http.StatusOK && missing < 0 {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body[:min(len(body), 512)]))
			if resp.StatusCode == http.StatusOK {
				last = fmt.Sprintf("no %q in %s", want[missing], last)
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy at %s (last answer: %s): %w", name, url, last, ctx.Err())
		case <-tick.C:
		}
	}
}

func (pr *process) stop() error {
	select {
	case <-pr.done:
		return nil
	default:
	}
	proc.Terminate(pr.cmd)
	select {
	case <-pr.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	proc.Kill(pr.cmd)
	<-pr.done
	return nil
}
