// Command operator is the Windows Machine Config Operator's manager: it
// watches WindowsInstance objects, the windows-instances ConfigMap and
// Windows Machines, and turns Windows hosts into Kubernetes nodes.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/controllers/inventory"
	"github.com/openwmco/wmco/controllers/servingcert"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/memlimit"
	"github.com/openwmco/wmco/pkg/metricsauth"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/version"
)

// defaultNamespace is where the operator runs when neither --namespace nor
// POD_NAMESPACE says otherwise.
const defaultNamespace = "wmco-system"

// detectWithin is how long start-up waits for the API server to answer
// before the process exits: within the manifest's liveness probe, which
// is not served yet then (15 s initial delay, 3 failures 20 s apart).
const detectWithin = 45 * time.Second

// The manager's own needs; each controller declares its permissions beside
// its reconciler.
//
// Secure metrics authenticate and authorize scrapers:
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// Leader election (a Lease in the operator's namespace) and its Events:
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=wmco-system,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=wmco-system,resources=events,verbs=create;patch
// The cluster DNS address for kubelets (kube-system/kube-dns), by name
// only: a CSV cannot grant a Role in kube-system.
// +kubebuilder:rbac:groups="",resources=services,verbs=get,resourceNames=kube-dns

type options struct {
	metricsAddr   string
	metricsSecure bool
	// metricsCert: serve the certificate of servingcert.MetricsSecretName.
	metricsCert     bool
	probeAddr       string
	leaderElect     bool
	namespace       string
	enableHTTP2     bool
	showVersion     bool
	payloadDir      string
	apiServerURL    string
	serviceCIDR     string
	clusterCIDR     string
	clusterDNS      string
	machineUsername string
	machineSSHPort  int
	// machineAccessTimeout bounds the wait for a Machine's host to let
	// the operator in before the Machine says so.
	machineAccessTimeout time.Duration
	drainTimeout         time.Duration
	versionPoll          time.Duration
	// pprofAddr serves net/http/pprof when set; loopback only.
	pprofAddr string
	// kubeQPS and kubeBurst bound the operator's API requests on the
	// client side; kubeQPS 0 leaves them to the API server's priority
	// and fairness.
	kubeQPS   float64
	kubeBurst int
	// kubeCompression asks the API server for gzipped responses and
	// watch streams.
	kubeCompression bool
	// memoryLimit is the Go runtime's soft memory limit (memlimit.Apply).
	memoryLimit string
}

func main() {
	var o options
	fs := flag.CommandLine
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443",
		"Address the metrics endpoint binds to, e.g. :8443 (HTTPS) or 127.0.0.1:8080 with --metrics-secure=false. 0 disables it.")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true,
		"Serve metrics over HTTPS and allow only clients authorized to get /metrics (TokenReview and SubjectAccessReview).")
	fs.BoolVar(&o.metricsCert, "metrics-serving-cert", true,
		"With --metrics-secure, serve the certificate of the Secret "+servingcert.MetricsSecretName+" in --namespace (issued by the operator's CA, or on OpenShift by the service CA for the Service "+servingcert.MetricsServiceName+"), which Prometheus verifies with the ConfigMap "+servingcert.CAConfigMapName+"; false: a self-signed certificate.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081",
		"Address the /healthz and /readyz probes bind to.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false,
		"Elect a leader (Lease in --namespace) so that only one replica acts at a time.")
	fs.StringVar(&o.namespace, "namespace", "",
		"Namespace the operator runs in: the windows-instances ConfigMap, the SSH key Secret and the leader Lease live there. Default: $POD_NAMESPACE, else "+defaultNamespace+".")
	fs.BoolVar(&o.enableHTTP2, "enable-http2", false,
		"Serve metrics over HTTP/2 as well (off by default: HTTP/2 Rapid Reset, CVE-2023-44487).")
	fs.BoolVar(&o.showVersion, "version", false, "Print the version and exit.")
	fs.StringVar(&o.payloadDir, "payload-dir", "/payload",
		"Directory with the Windows payload (manifest.json and the files it lists), or with payloads in subdirectories named by Kubernetes version (v1.37.2/manifest.json, as make payload writes them); all are verified at start-up, and hosts get the newest the API server's version allows.")
	fs.DurationVar(&o.versionPoll, "version-poll-interval", cluster.DefaultVersionPollInterval,
		"How often the API server's version is read; when the control plane is upgraded, hosts follow to the newest payload it allows.")
	fs.StringVar(&o.apiServerURL, "api-server-url", "",
		"API server URL the Windows kubelets use. Default: kube-public/cluster-info (kubeadm, kind), else the operator's own client config.")
	fs.StringVar(&o.serviceCIDR, "service-cidr", "",
		"The cluster's service CIDR (WindowsNodeConfig spec.network.serviceNetworkCIDR overrides it). On OpenShift its Network config's wins; elsewhere the default is the ServiceCIDR object named kubernetes, else "+cluster.DefaultServiceCIDR+".")
	fs.StringVar(&o.clusterCIDR, "cluster-cidr", "",
		"The pod network CIDR Windows pods get addresses from (WindowsNodeConfig spec.network.clusterNetworkCIDR overrides it). On OpenShift the hybrid overlay's wins; elsewhere the default is Network of kube-flannel's net-conf.json (ConfigMap kube-flannel-cfg in kube-flannel or kube-system).")
	fs.StringVar(&o.clusterDNS, "cluster-dns", "",
		"Cluster DNS address for the kubelets. Default: the ClusterIP of kube-system/kube-dns.")
	fs.StringVar(&o.machineUsername, "machine-username", "",
		"User the operator logs in as on hosts of Windows Machines. Default: the platform's (Administrator; capi on Azure).")
	fs.IntVar(&o.machineSSHPort, "machine-ssh-port", 22,
		"SSH port of the hosts of Windows Machines.")
	fs.DurationVar(&o.machineAccessTimeout, "machine-access-timeout", inventory.DefaultMachineAccessTimeout,
		"How long the host of a Windows Machine may refuse or ignore the operator before the Machine reports WindowsHostAccessible=False with a Warning Event.")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", instance.DefaultDrainTimeout,
		"How long draining a Node before deconfiguring it may take before the instance reports DrainTimedOut (the drain goes on; PodDisruptionBudgets are never overridden).")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "",
		"Serve Go's profiles (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060 (reach it with kubectl port-forward). Empty (the default) serves none; other than loopback addresses are refused: the profiles are not authenticated.")
	fs.Float64Var(&o.kubeQPS, "kube-api-qps", defaultKubeQPS,
		"Sustained API requests per second the operator's clients may make; 0 sets no client-side limit and leaves fairness to the API server's priority and fairness.")
	fs.IntVar(&o.kubeBurst, "kube-api-burst", defaultKubeBurst,
		"API requests the operator's clients may make at once above --kube-api-qps (a burst of joining hosts' CSRs).")
	fs.BoolVar(&o.kubeCompression, "kube-api-compression", false,
		"Ask the API server to gzip its responses and watch streams. Off by default: within a cluster the bytes it saves cost CPU on the API server and in the operator for every watch event.")
	fs.StringVar(&o.memoryLimit, "memory-limit", "",
		"Soft memory limit of the Go runtime, e.g. 96Mi (0 for none): near it the garbage collector runs sooner instead of letting the heap grow to twice what is live. Default: $GOMEMLIMIT, else 75% of the container's memory limit, else none.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	flag.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [flags]\n\nThe Windows Machine Config Operator manager.\nThe cluster is found from --kubeconfig, $KUBECONFIG, in-cluster config or ~/.kube/config.\n\nFlags:\n", os.Args[0])
		fs.PrintDefaults()
	}
	flag.Parse()

	if o.showVersion {
		fmt.Println(version.Get())
		return
	}
	if zapOpts.Level != nil {
		zapOpts.Level = cappedLevel{zapOpts.Level}
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	if err := run(o); err != nil {
		ctrl.Log.Error(err, "Operator exited")
		os.Exit(1)
	}
}

func run(o options) error {
	log := ctrl.Log.WithName("setup")
	memLimit, memSource, err := memlimit.Apply(o.memoryLimit)
	if err != nil {
		return fmt.Errorf("--memory-limit: %w", err)
	}
	log.Info("Go memory limit", "bytes", memLimit, "source", memSource)
	gcPercent, gcSource := memlimit.ApplyGCPercent(os.Getenv("GOGC"))
	log.Info("Go garbage collector target", "percent", gcPercent, "source", gcSource)
	if o.namespace == "" {
		o.namespace = os.Getenv("POD_NAMESPACE")
	}
	if o.namespace == "" {
		o.namespace = defaultNamespace
	}
	scheme, err := core.NewScheme()
	if err != nil {
		return fmt.Errorf("build scheme: %w", err)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load cluster config: %w", err)
	}
	if err := applyClientLimits(cfg, o.kubeQPS, o.kubeBurst); err != nil {
		return err
	}
	// client-go asks for gzip unless told not to; the API server then
	// compresses every event of a watch that began with a list
	// (WatchListCompression) and every large response.
	cfg.DisableCompression = !o.kubeCompression
	// The watches' connection is not limited: a watch holds its stream
	// for as long as it runs (see newWatchHTTPClient).
	watchCfg := rest.CopyConfig(cfg)
	limitInFlight(cfg, maxInFlight)
	if err := checkLoopback(o.pprofAddr); err != nil {
		return fmt.Errorf("--pprof-bind-address: %w", err)
	}

	var tlsOpts []func(*tls.Config)
	if !o.enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	var metricsCert *servingcert.MetricsCertificate
	if o.metricsSecure && o.metricsCert {
		metricsCert = &servingcert.MetricsCertificate{}
		tlsOpts = append(tlsOpts, metricsCert.TLSOpt)
	}
	metricsOpts := metricsserver.Options{
		BindAddress:   o.metricsAddr,
		SecureServing: o.metricsSecure,
		TLSOpts:       tlsOpts,
	}
	if o.metricsSecure {
		metricsOpts.FilterProvider = metricsauth.Filter
	}

	cs, err := cluster.NewClients(cfg)
	if err != nil {
		return err
	}
	ctx := ctrl.SetupSignalHandler()
	info, err := cluster.DetectRetrying(ctx, cs.Discovery(), detectWithin, func(err error, wait time.Duration) {
		log.Info("Waiting for the API server", "error", err.Error(), "retryIn", wait.String())
	})
	if err != nil {
		return err
	}
	payloads, err := payload.LoadCatalog(o.payloadDir)
	if err != nil {
		return fmt.Errorf("load payload: %w", err)
	}
	if sel, err := payloads.Select(info.Version); err != nil {
		// Not fatal: every instance says so, no host is touched, and an
		// upgraded control plane may fit a payload later.
		log.Error(err, "No payload fits the API server; hosts are left alone", "apiServer", info.Version)
	} else {
		log.Info("Payload", "dir", sel.Dir, "version", sel.Manifest.Version, "kubernetesVersion", sel.Manifest.KubernetesVersion,
			"apiServer", info.Version, "available", payloads.KubernetesVersions())
	}
	vc, err := cluster.VersionClient(cfg)
	if err != nil {
		return err
	}
	versions := cluster.NewVersionWatcher(vc, info.Version, o.versionPoll)
	ep, err := cluster.DiscoverEndpoint(ctx, cs, cfg, o.apiServerURL)
	if err != nil {
		return err
	}
	if o.clusterDNS == "" {
		if o.clusterDNS, err = cluster.DNSServiceIP(ctx, cs); err != nil {
			return err
		}
	}
	// The platform type says how Windows Machines map to hosts; the
	// uncached client reads it once (it never changes in a cluster's life).
	var machinePlatform configv1.PlatformType
	if info.Platform == cluster.OpenShift {
		reader, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			return err
		}
		if machinePlatform, err = cluster.InfrastructurePlatform(ctx, reader); err != nil {
			return err
		}
	}
	if o.machineSSHPort < 1 || o.machineSSHPort > 65535 {
		return fmt.Errorf("--machine-ssh-port %d is not from 1 to 65535", o.machineSSHPort)
	}
	log.Info("Cluster", "platform", info.Platform, "version", info.Version, "machineAPI", info.MachineAPI,
		"infrastructure", machinePlatform, "kubeletAPIServer", ep.URL, "from", ep.Source)

	// SSH keys live in the operator's namespace, whose Secrets alone are
	// cached: the userData Secrets of Windows Machines it writes elsewhere
	// it never reads (and may not; see controllers/userdata).
	secretNamespaces := map[string]cache.Config{o.namespace: {}}
	watchHTTP, err := newWatchHTTPClient(watchCfg)
	if err != nil {
		return fmt.Errorf("create the watches' HTTP client: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		// The cache's watches (CSRs, Nodes, instances: the kinds that
		// are busy in a burst) have a connection to the API server of
		// their own; see newWatchHTTPClient.
		Cache: cache.Options{HTTPClient: watchHTTP, DefaultTransform: controllers.CacheTransform, ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Namespaces: secretNamespaces},
			// Only the Windows nodes the operator made are cached, so
			// memory does not grow with the cluster's Linux nodes.
			&corev1.Node{}: {Label: labels.SelectorFromSet(nil).Add(mustRequirement(wmcov1.LabelInstance))},
		}},
		Scheme:                  scheme,
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "wmco.io-operator-leader",
		LeaderElectionNamespace: o.namespace,
		// Step down cleanly on SIGTERM so a new replica takes over at once.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("add readiness check: %w", err)
	}

	if err := mgr.Add(versions); err != nil {
		return fmt.Errorf("add the version watcher: %w", err)
	}
	if err := controllers.Setup(ctx, mgr, controllers.Options{
		Config:   core.Config{Namespace: o.namespace, Platform: info.Platform},
		Payloads: payloads, ServerVersion: versions, Clientset: cs,
		// OLM names the operator's OperatorCondition in the Deployment.
		OperatorConditionName: os.Getenv("OPERATOR_CONDITION_NAME"),
		Cluster: nodeconfig.ClusterFacts{
			APIServerURL: ep.URL, CACertPEM: ep.CACert, ServiceCIDR: o.serviceCIDR,
			ClusterNetworkCIDR: o.clusterCIDR, DNSIP: o.clusterDNS, KubernetesVersion: info.Version,
		},
		DrainTimeout:       o.drainTimeout,
		MetricsCertificate: metricsCert,
		MachineAPI:         info.MachineAPI,
		MachineUsername:    o.machineUsername,
		MachineSSHPort:     int32(o.machineSSHPort), //nolint:gosec // checked below to be a port number.
		MachinePlatform:    machinePlatform, MachineAccessTimeout: o.machineAccessTimeout,
		LeaderElection: o.leaderElect,
	}); err != nil {
		return err
	}

	log.Info("Starting manager", "version", version.Get(), "namespace", o.namespace, "leaderElection", o.leaderElect)
	return mgr.Start(ctx)
}

// Client-side API limits by default. A decision on a kubelet CSR takes
// two live reads (APIReader) and one write (the manager's client), and
// each client has a bucket of its own: a burst of 1,000 joining hosts'
// CSRs fits in the burst, so it is never throttled on the client side;
// the sustained rate only bounds a runaway loop. In make bench the
// operator stayed far below it (a 1,000-CSR burst: 3.5% of one core,
// about 55 requests/s, bounded by the API server on a loaded machine).
const (
	defaultKubeQPS   = 300
	defaultKubeBurst = 3000
)

// newWatchHTTPClient is an HTTP client for cfg with a connection of its
// own. The API server serves all requests of one HTTP/2 connection
// through one loop, and stops sending to a watcher that falls behind a
// burst of events: it holds back the events of every other watcher of
// that resource for up to its dispatch budget, then closes the watch.
// With the manager's cache watching over the connection that also
// carries the approver's reads and writes, a 1,000-CSR burst (make
// bench) had 14-17 watches of CSRs closed; with the watches on their
// own connection, 0-3, and the approvals' p99 fell (see
// docs/benchmarks-goals.md). A Dial of its own keeps client-go from
// handing out the transport it shares among clients of equal TLS
// settings.
func newWatchHTTPClient(cfg *rest.Config) (*http.Client, error) {
	c := rest.CopyConfig(cfg)
	c.Dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return rest.HTTPClientFor(c)
}

// maxInFlight is how many requests the operator's clients (all but the
// cache's watches) have open at once. They share one HTTP/2 connection to
// the API server, which serves at most 100 streams on one connection
// (kube-apiserver's default --http2-max-streams-per-connection), and Go's
// HTTP/2 client opens another connection, a full TLS handshake on both
// sides, for each request that finds the streams taken. A burst of CSRs
// (96 approver workers, two reads each) opened 39 connections, closed
// again once idle, each burst anew. Requests beyond the bound wait in the
// operator for a stream instead; the rest of the 100 are left to the few
// watches on this connection, which the bound does not count.
const maxInFlight = 64

// limitInFlight bounds how many requests the clients made from cfg have
// open at once, together: they share one connection (client-go shares a
// transport among clients of equal TLS settings). A request holds its
// slot from before it is sent until its response body is closed (its
// stream ends); it waits for a free slot, or until its context ends.
// Watches and protocol upgrades (exec, port-forward) are not counted:
// they hold a stream for as long as they run.
func limitInFlight(cfg *rest.Config, n int) {
	slots := make(chan struct{}, n)
	wrap := cfg.WrapTransport
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		if wrap != nil {
			rt = wrap(rt)
		}
		return inFlightLimit{next: rt, slots: slots}
	}
}

// inFlightLimit is the RoundTripper of limitInFlight.
type inFlightLimit struct {
	next  http.RoundTripper
	slots chan struct{}
}

func (l inFlightLimit) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Upgrade") != "" || req.URL.Query().Get("watch") == "true" {
		return l.next.RoundTrip(req)
	}
	select {
	case l.slots <- struct{}{}:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	resp, err := l.next.RoundTrip(req)
	if err != nil {
		<-l.slots
		return nil, err
	}
	resp.Body = &slotBody{ReadCloser: resp.Body, slots: l.slots}
	return resp, nil
}

// slotBody gives its request's slot back when it is closed.
type slotBody struct {
	io.ReadCloser
	slots chan struct{}
	once  sync.Once
}

func (b *slotBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { <-b.slots })
	return err
}

// applyClientLimits sets the client-side rate limit of every client made
// from cfg: qps 0 disables it (the API server's priority and fairness
// still applies).
func applyClientLimits(cfg *rest.Config, qps float64, burst int) error {
	switch {
	case qps < 0:
		return fmt.Errorf("--kube-api-qps %v is negative", qps)
	case qps == 0:
		cfg.QPS, cfg.Burst = -1, 0
		return nil
	case burst < 1:
		return fmt.Errorf("--kube-api-burst %d must be at least 1", burst)
	}
	cfg.QPS, cfg.Burst = float32(qps), burst
	return nil
}

// checkLoopback accepts an empty address (nothing served), "0" (the
// manager's word for none) and host:port with a loopback host.
func checkLoopback(addr string) error {
	if addr == "" || addr == "0" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address", addr)
	}
	return nil
}

func mustRequirement(key string) labels.Requirement {
	r, err := labels.NewRequirement(key, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	return *r
}

// maxVerbosity is the most verbose level the operator logs at, whatever
// --zap-log-level asks: from V(8) on, client-go logs the bodies of
// requests and responses, which hold Secrets (SSH keys, bootstrap tokens).
const maxVerbosity = 7

// cappedLevel enables what its LevelEnabler does, down to V(maxVerbosity).
type cappedLevel struct{ zapcore.LevelEnabler }

// Enabled reports whether entries at l are logged.
func (c cappedLevel) Enabled(l zapcore.Level) bool {
	return l >= -maxVerbosity && c.LevelEnabler.Enabled(l)
}
