//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/gomega"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// byohProvider uses a cluster where the operator is deployed and real
// Windows hosts reached over SSH with pkg/remote:
//
//	KUBECONFIG               the cluster (required)
//	WMCO_E2E_NAMESPACE       the operator's namespace (default wmco-system)
//	WMCO_E2E_HOSTS           address[:port],... of Windows hosts (at least 2)
//	WMCO_E2E_SSH_KEY         path of the SSH private key the hosts accept
//	WMCO_E2E_USERNAME        SSH user (default Administrator)
//	WMCO_E2E_METRICS_URL     optional: the operator's metrics, e.g. through
//	                         kubectl port-forward; https is not verified
//	WMCO_E2E_METRICS_TOKEN   optional: bearer token for that URL
//
// The suite writes the key into the cloud-private-key Secret. Its own SSH
// connections (to stop a service, reboot, check a host is clean) trust
// the host key on first use.
type byohProvider struct {
	client    client.Client
	clientset *kubernetes.Clientset
	namespace string
	username  string
	key       []byte
	hosts     []Host
	dialer    remote.Dialer
}

func connectBYOH(ctx context.Context) (*byohProvider, error) {
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("byoh: load KUBECONFIG: %w", err)
	}
	scheme, err := core.NewScheme()
	if err != nil {
		return nil, err
	}
	p := &byohProvider{
		namespace: envOr("WMCO_E2E_NAMESPACE", "wmco-system"),
		username:  envOr("WMCO_E2E_USERNAME", "Administrator"),
		dialer:    &remote.SSHDialer{},
	}
	if p.client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	if p.clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if p.hosts, err = parseHosts(os.Getenv("WMCO_E2E_HOSTS")); err != nil {
		return nil, err
	}
	keyPath := os.Getenv("WMCO_E2E_SSH_KEY")
	if keyPath == "" {
		return nil, errors.New("byoh: WMCO_E2E_SSH_KEY (path of the hosts' SSH private key) is not set")
	}
	if p.key, err = os.ReadFile(keyPath); err != nil {
		return nil, fmt.Errorf("byoh: read WMCO_E2E_SSH_KEY: %w", err)
	}
	// The operator's CRDs are served and its namespace exists: it is
	// deployed (kubectl apply -k config/default).
	if err := p.client.List(ctx, &wmcov1.WindowsInstanceList{}); err != nil {
		return nil, fmt.Errorf("byoh: list WindowsInstances (is the operator deployed?): %w", err)
	}
	if err := p.client.Get(ctx, client.ObjectKey{Name: p.namespace}, &corev1.Namespace{}); err != nil {
		return nil, fmt.Errorf("byoh: namespace %s (WMCO_E2E_NAMESPACE): %w", p.namespace, err)
	}
	if err := p.writeKeySecret(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// parseHosts reads "address[:port],...". IPv6 hosts cannot be listed in
// the windows-instances ConfigMap, so they are not accepted here.
func parseHosts(s string) ([]Host, error) {
	var hosts []Host
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		h := Host{Address: item, Port: 22}
		if host, port, err := net.SplitHostPort(item); err == nil {
			n, err := strconv.Atoi(port)
			if err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("byoh: WMCO_E2E_HOSTS: bad port in %q", item)
			}
			h = Host{Address: host, Port: n}
		}
		if strings.Contains(h.Address, ":") {
			return nil, fmt.Errorf("byoh: WMCO_E2E_HOSTS: %q: IPv6 hosts cannot be listed in the windows-instances ConfigMap; use IPv4 addresses or DNS names", item)
		}
		hosts = append(hosts, h)
	}
	if len(hosts) < 2 {
		return nil, fmt.Errorf("byoh: WMCO_E2E_HOSTS needs at least 2 hosts (address[:port],...), got %d", len(hosts))
	}
	return hosts, nil
}

// writeKeySecret creates or updates the cloud-private-key Secret.
func (p *byohProvider) writeKeySecret(ctx context.Context) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: wmcov1.DefaultCredentialsSecretName, Namespace: p.namespace}}
		_, err := controllerutil.CreateOrUpdate(ctx, p.client, s, func() error {
			if s.Data == nil {
				s.Data = map[string][]byte{}
			}
			s.Data[wmcov1.DefaultCredentialsSecretKey] = p.key
			return nil
		})
		return err
	})
}

func (p *byohProvider) Name() string                    { return "byoh" }
func (p *byohProvider) Namespace() string               { return p.namespace }
func (p *byohProvider) Username() string                { return p.username }
func (p *byohProvider) Hosts() []Host                   { return p.hosts }
func (p *byohProvider) Client() client.Client           { return p.client }
func (p *byohProvider) Clientset() kubernetes.Interface { return p.clientset }

func (p *byohProvider) Timeouts() Timeouts {
	return Timeouts{Join: 30 * time.Minute, Remove: 10 * time.Minute, Recover: 5 * time.Minute, Reboot: 20 * time.Minute}
}

// run executes argv on the host over a fresh SSH session.
func (p *byohProvider) run(ctx context.Context, h Host, argv ...string) (remote.Result, error) {
	s, err := p.dial(ctx, h)
	if err != nil {
		return remote.Result{}, err
	}
	defer func() { _ = s.Close() }()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return s.Run(ctx, argv)
}

func (p *byohProvider) dial(ctx context.Context, h Host) (remote.Session, error) {
	return p.dialer.Dial(ctx, remote.Target{
		Address: h.Address, Port: h.Port, Username: p.username, PrivateKey: p.key, TrustOnFirstUse: true,
	})
}

func (p *byohProvider) StopService(ctx context.Context, h Host, name string) error {
	res, err := p.run(ctx, h, "sc.exe", "stop", name)
	if err != nil {
		return fmt.Errorf("sc.exe stop %s on %s: %w", name, h, err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("sc.exe stop %s on %s: exit code %d: %s", name, h, res.ExitCode, res.Stdout)
	}
	return nil
}

// Service reads `sc.exe queryex <name>`: its STATE line and its PID.
func (p *byohProvider) Service(ctx context.Context, h Host, name string) (ServiceState, error) {
	res, err := p.run(ctx, h, "sc.exe", "queryex", name)
	if err != nil {
		return ServiceState{}, fmt.Errorf("sc.exe queryex %s on %s: %w", name, h, err)
	}
	if res.ExitCode != 0 {
		return ServiceState{}, fmt.Errorf("sc.exe queryex %s on %s: exit code %d: %s", name, h, res.ExitCode, res.Stdout)
	}
	var st ServiceState
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "STATE":
			st.Running = strings.Contains(v, "RUNNING")
		case "PID":
			st.Instance = strings.TrimSpace(v)
		}
	}
	return st, nil
}

func (p *byohProvider) Reboot(ctx context.Context, h Host) error {
	res, err := p.run(ctx, h, "shutdown.exe", "/r", "/t", "5")
	if err != nil {
		return fmt.Errorf("shutdown.exe /r on %s: %w", h, err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("shutdown.exe /r on %s: exit code %d: %s", h, res.ExitCode, res.Stdout)
	}
	return nil
}

// errServiceDoesNotExist is sc.exe's exit code for an unknown service
// (ERROR_SERVICE_DOES_NOT_EXIST).
const errServiceDoesNotExist = 1060

// ExpectClean checks that the agent and the payload are gone and that no
// service of a plan exists. HNS networks are not checked on real hosts.
func (p *byohProvider) ExpectClean(g Gomega, h Host) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := p.dial(ctx, h)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = s.Close() }()
	for _, path := range []string{wicdapi.AgentPath, wicdapi.PayloadRoot} {
		_, err := s.Stat(ctx, path)
		g.Expect(errors.Is(err, fs.ErrNotExist)).To(BeTrue(), "%s is still on %s (stat: %v)", path, h, err)
	}
	for _, svc := range []string{
		wicdapi.AgentServiceName, nodeconfig.ServiceKubelet, nodeconfig.ServiceKubeProxy, nodeconfig.ServiceHybridOverlay,
		nodeconfig.ServiceContainerd, nodeconfig.ServiceCSIProxy, nodeconfig.ServiceWindowsExporter,
	} {
		res, err := s.Run(ctx, []string{"sc.exe", "query", svc})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.ExitCode).To(Equal(errServiceDoesNotExist), "service %s is still on %s", svc, h)
	}
}

// MetricsText reads WMCO_E2E_METRICS_URL. The metrics endpoint checks the
// caller's token with TokenReview, which the API server's service proxy
// does not forward, so without a URL (a port-forward) the specs skip.
func (p *byohProvider) MetricsText(ctx context.Context) (string, error) {
	url := os.Getenv("WMCO_E2E_METRICS_URL")
	if url == "" {
		return "", fmt.Errorf("%w: set WMCO_E2E_METRICS_URL (e.g. after `kubectl -n %s port-forward svc/wmco-metrics 8443`, https://127.0.0.1:8443/metrics) and WMCO_E2E_METRICS_TOKEN (a token of a ServiceAccount bound to ClusterRole wmco-metrics-reader)",
			ErrMetricsUnavailable, p.namespace)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if t := os.Getenv("WMCO_E2E_METRICS_TOKEN"); t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	// The operator serves metrics with a self-signed certificate.
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a test reading its own operator's metrics
	}}
	return getText(req, c)
}

func (p *byohProvider) Diagnostics() string {
	return fmt.Sprintf("kubectl -n %s logs deploy/wmco; kubectl get wi -o wide; kubectl get events -A --field-selector involvedObject.kind=WindowsInstance", p.namespace)
}

func (p *byohProvider) Stop() error { return nil }

// MachineSet is the MachineSet WMCO_E2E_MACHINESET names (in
// WMCO_E2E_MACHINESET_NAMESPACE, default openshift-machine-api), or nil
// without it. It must make Windows Machines; the spec scales it from 0 and
// leaves it at 0.
func (p *byohProvider) MachineSet(ctx context.Context) (*machinev1beta1.MachineSet, error) {
	name := os.Getenv("WMCO_E2E_MACHINESET")
	if name == "" {
		return nil, nil
	}
	ms := &machinev1beta1.MachineSet{}
	key := client.ObjectKey{Namespace: envOr("WMCO_E2E_MACHINESET_NAMESPACE", "openshift-machine-api"), Name: name}
	if err := p.client.Get(ctx, key, ms); err != nil {
		return nil, fmt.Errorf("byoh: MachineSet %s (WMCO_E2E_MACHINESET): %w", key, err)
	}
	if ms.Spec.Template.Labels[wmcov1.MachineOSIDLabel] != "Windows" {
		return nil, fmt.Errorf("byoh: MachineSet %s does not make Windows Machines (template label %s=Windows)", key, wmcov1.MachineOSIDLabel)
	}
	return ms, nil
}

// ExpectMachineCleaned can see nothing of a VM the cloud destroyed: the
// spec's own checks (no instance, no Node left) are what byoh proves.
func (p *byohProvider) ExpectMachineCleaned(Gomega, string, string) {}

// KillMachineVM: byoh does not power a cloud's VMs off.
func (p *byohProvider) KillMachineVM(context.Context, string) error { return errors.ErrUnsupported }

// ExpectMachineAbandoned can see nothing of a VM the cloud destroyed.
func (p *byohProvider) ExpectMachineAbandoned(Gomega, string, string) {}

// MachineAccessTimeout is the operator's default: byoh does not start it.
func (p *byohProvider) MachineAccessTimeout() time.Duration { return 10 * time.Minute }
