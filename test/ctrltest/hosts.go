package ctrltest

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	configv1 "github.com/openshift/api/config/v1"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/localcluster"
	"github.com/openwmco/wmco/test/testpayload"
	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// Shared by the tests that configure simulated hosts.
var (
	fixtureOnce sync.Once
	fixtureErr  error
	PayloadDir  string
	Payload     *payload.Manifest
	Signer      ssh.Signer
	KeyPEM      []byte
	// hostSeq numbers simulated hosts across tests: each gets its own
	// loopback address and name.
	hostSeq atomic.Int32
)

// HostFixture writes the test payload and the SSH key Secret once.
func HostFixture(t *testing.T) {
	t.Helper()
	fixtureOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wmco-test-payload-")
		if err != nil {
			fixtureErr = err
			return
		}
		PayloadDir = dir
		if Payload, fixtureErr = testpayload.Write(dir, testpayload.Options{}); fixtureErr != nil {
			return
		}
		key, err := winsim.NewUserKey()
		if err != nil {
			fixtureErr = err
			return
		}
		KeyPEM, Signer = key.PEM, key.Signer
		fixtureErr = Client.Create(context.Background(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: wmcov1.DefaultCredentialsSecretName, Namespace: Namespace},
			Data:       map[string][]byte{wmcov1.DefaultCredentialsSecretKey: KeyPEM},
		})
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
}

// SimHost is a simulated Windows host ready to become a node.
type SimHost struct {
	*simagent.Node
	Name string // WindowsInstance and node name
	IP   string // loopback address its SSH server listens on
}

// StartHosts starts n simulated hosts on distinct loopback addresses,
// authorizing the test key for Administrator.
func StartHosts(t *testing.T, n int, opts simagent.Options) []*SimHost {
	t.Helper()
	return StartHostsOfBuild(t, n, 0, opts)
}

// StartHostsOfBuild is StartHosts with hosts of Windows build osBuild
// (winsim's default, Server 2022, when 0).
func StartHostsOfBuild(t *testing.T, n, osBuild int, opts simagent.Options) []*SimHost {
	t.Helper()
	return startHosts(t, n, osBuild, nil, opts)
}

// StartLoggedHost is StartHosts for one host whose diagnostics (winsim's
// "Command started" and the like) go to log.
func StartLoggedHost(t *testing.T, log *slog.Logger, opts simagent.Options) *SimHost {
	t.Helper()
	return startHosts(t, 1, 0, log, opts)[0]
}

func startHosts(t *testing.T, n, osBuild int, log *slog.Logger, opts simagent.Options) []*SimHost {
	t.Helper()
	HostFixture(t)
	hosts := make([]*SimHost, n)
	for i := range hosts {
		seq := hostSeq.Add(1)
		ip := fmt.Sprintf("127.0.%d.%d", 10+seq/200, 1+seq%200)
		name := fmt.Sprintf("win-t%d", seq)
		h, err := winsim.Start(context.Background(), winsim.Options{
			Hostname: strings.ToUpper(name), ListenAddress: ip + ":0", OSBuild: osBuild,
			IPAddresses: []netip.Addr{netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", seq%250+1))},
			Logger:      log,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Close() })
		h.AuthorizeKey("Administrator", Signer.PublicKey())
		if opts.AgentRunInterval == 0 {
			opts.AgentRunInterval = time.Second
		}
		if opts.KubeletLeaseDuration == 0 {
			opts.KubeletLeaseDuration = 4 * time.Second
		}
		if opts.KubeletStatusInterval == 0 {
			opts.KubeletStatusInterval = 2 * time.Second
		}
		node, err := simagent.Install(h, opts)
		if err != nil {
			t.Fatal(err)
		}
		hosts[i] = &SimHost{Node: node, Name: name, IP: ip}
	}
	return hosts
}

// InstanceFor is a WindowsInstance for a simulated host.
func InstanceFor(h *SimHost) *wmcov1.WindowsInstance {
	return &wmcov1.WindowsInstance{
		ObjectMeta: metav1.ObjectMeta{Name: h.Name},
		Spec: wmcov1.WindowsInstanceSpec{
			Address: h.IP, Port: int32(h.Host.Port()), Username: "Administrator",
		},
	}
}

// CountingDialer records how many SSH sessions are open at once.
type CountingDialer struct {
	remote.Dialer
	Open, Peak, Dials atomic.Int32
}

// Dial dials through the wrapped Dialer and counts the sessions open at
// once until each is closed.
func (d *CountingDialer) Dial(ctx context.Context, t remote.Target) (remote.Session, error) {
	d.Dials.Add(1)
	s, err := d.Dialer.Dial(ctx, t)
	if err != nil {
		return nil, err
	}
	n := d.Open.Add(1)
	for {
		p := d.Peak.Load()
		if n <= p || d.Peak.CompareAndSwap(p, n) {
			break
		}
	}
	return &countedSession{Session: s, d: d}, nil
}

type countedSession struct {
	remote.Session
	d    *CountingDialer
	once sync.Once
}

func (s *countedSession) Close() error {
	s.once.Do(func() { s.d.Open.Add(-1) })
	return s.Session.Close()
}

// OperatorOptions tune StartOperator.
type OperatorOptions struct {
	// MaxParallel, when positive, is set as the WindowsNodeConfig's
	// maxParallelConfigurations for the test (SetNodeConfig).
	MaxParallel int
	// DrainTimeout is the drain deadline (default the operator's).
	DrainTimeout time.Duration
	// MachineSSHPort is where Machine hosts' SSH servers listen.
	MachineSSHPort int32
	// MachinePlatform is the cluster's platform for Windows Machines
	// (default None).
	MachinePlatform configv1.PlatformType
	// MachineAccessTimeout bounds the wait for a Machine's host to let
	// the operator in (default the operator's).
	MachineAccessTimeout time.Duration
	// Payloads, when set, replace the one test payload.
	Payloads *payload.Catalog
	// ServerVersion, when set, is the API server's version the operator
	// sees (default the local control plane's).
	ServerVersion core.VersionSource
	// Platform is the kind of cluster the operator is told it runs in
	// (default plain Kubernetes).
	Platform cluster.Platform
	// ClusterSource, when set, tells the cluster facts instead of the
	// local control plane's fixed ones.
	ClusterSource core.ClusterSource
}

// StartOperator runs every controller of the operator, wired as main wires
// them, until the test ends. Its dialer counts sessions.
func StartOperator(t *testing.T, o OperatorOptions) *CountingDialer {
	t.Helper()
	d, _ := StartStoppableOperator(t, o)
	return d
}

// StartStoppableOperator is StartOperator with a function that stops the
// operator before the test ends, as when it exits or is replaced.
func StartStoppableOperator(t *testing.T, o OperatorOptions) (*CountingDialer, func()) {
	t.Helper()
	HostFixture(t)
	if o.MaxParallel > 0 {
		SetNodeConfig(t, func(spec *wmcov1.WindowsNodeConfigSpec) { spec.MaxParallelConfigurations = int32(o.MaxParallel) })
	}
	if o.Platform == "" {
		o.Platform = cluster.Kubernetes
	}
	dialer := &CountingDialer{Dialer: &remote.SSHDialer{Hash: instance.AgentHash}}
	_, stop := StartStoppableManager(t, func(mgr ctrl.Manager) error {
		return controllers.Setup(context.Background(), mgr, controllers.Options{
			Config:        core.Config{Namespace: Namespace, Platform: cmp.Or(o.Platform, cluster.Kubernetes)},
			ClusterSource: o.ClusterSource,
			Payload:       Payload, PayloadDir: PayloadDir, Payloads: o.Payloads, ServerVersion: o.ServerVersion,
			Dialer: dialer, Clientset: Clientset,
			Cluster: nodeconfig.ClusterFacts{
				APIServerURL: Cluster.Host, CACertPEM: Cluster.CACert, ServiceCIDR: localcluster.ServiceCIDR,
				ClusterNetworkCIDR: localcluster.ClusterCIDR, DNSIP: "10.0.0.10", KubernetesVersion: localcluster.DefaultKubernetesVersion,
			},
			DrainTimeout:    o.DrainTimeout,
			MachineAPI:      true,
			MachineSSHPort:  o.MachineSSHPort,
			MachinePlatform: o.MachinePlatform, MachineAccessTimeout: o.MachineAccessTimeout,
		})
	})
	return dialer, stop
}

// WaitReady waits for the instance to be Ready and returns its Node.
func WaitReady(t *testing.T, name string, timeout time.Duration) *corev1.Node {
	t.Helper()
	g := NewWithT(t)
	var node corev1.Node
	g.Eventually(func(g Gomega) {
		wi := &wmcov1.WindowsInstance{}
		g.Expect(Client.Get(t.Context(), client.ObjectKey{Name: name}, wi)).To(Succeed())
		g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseReady), "phase %s: %s", wi.Status.Phase, wi.Status.Message)
		g.Expect(Client.Get(t.Context(), client.ObjectKey{Name: wi.Status.NodeName}, &node)).To(Succeed())
	}).WithTimeout(timeout).WithPolling(250 * time.Millisecond).Should(Succeed())
	return &node
}

// ExpectHostClean checks that no service, HNS network or file of ours is
// left on the host.
func ExpectHostClean(g Gomega, h *SimHost) {
	names, err := h.Services.List(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(names).To(BeEmpty(), "services left on %s", h.Name)
	g.Expect(h.Networks()).To(BeEmpty())
	for _, root := range []string{wicdapi.InstallRoot, `C:\var\lib\kubelet`} {
		infos, err := h.Host.Disk().List(root)
		if err == nil {
			g.Expect(infos).To(BeEmpty(), "files left under %s on %s", root, h.Name)
		}
	}
}

// DeleteAndWait deletes an instance and waits until it is gone.
func DeleteAndWait(t *testing.T, name string, timeout time.Duration) {
	t.Helper()
	g := NewWithT(t)
	g.Expect(client.IgnoreNotFound(Client.Delete(t.Context(), &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: name}}))).To(Succeed())
	g.Eventually(func() bool {
		err := Client.Get(t.Context(), client.ObjectKey{Name: name}, &wmcov1.WindowsInstance{})
		return apierrors.IsNotFound(err)
	}).WithTimeout(timeout).Should(BeTrue())
}

// SetNodeConfig creates or changes the WindowsNodeConfig singleton with
// mutate; the singleton is deleted when the test ends, so tests of one
// package (which run one after another) do not see each other's.
func SetNodeConfig(t *testing.T, mutate func(*wmcov1.WindowsNodeConfigSpec)) {
	t.Helper()
	g := NewWithT(t)
	ctx := t.Context()
	wnc := &wmcov1.WindowsNodeConfig{}
	err := Client.Get(ctx, client.ObjectKey{Name: wmcov1.WindowsNodeConfigName}, wnc)
	switch {
	case apierrors.IsNotFound(err):
		wnc = &wmcov1.WindowsNodeConfig{ObjectMeta: metav1.ObjectMeta{Name: wmcov1.WindowsNodeConfigName}}
		mutate(&wnc.Spec)
		g.Expect(Client.Create(ctx, wnc)).To(Succeed())
		t.Cleanup(func() {
			_ = Client.Delete(context.Background(), &wmcov1.WindowsNodeConfig{ObjectMeta: metav1.ObjectMeta{Name: wmcov1.WindowsNodeConfigName}})
		})
	case err != nil:
		t.Fatal(err)
	default:
		patch := client.MergeFrom(wnc.DeepCopy())
		mutate(&wnc.Spec)
		g.Expect(Client.Patch(ctx, wnc, patch)).To(Succeed())
	}
}

// UpdateInstance changes the WindowsInstance name with mutate and writes
// it, reading it again when the write meets a newer version: the
// operator's status writes change the resourceVersion at any time, so a
// read followed by an update races with them.
func UpdateInstance(ctx context.Context, name string, mutate func(wi *wmcov1.WindowsInstance)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		wi := &wmcov1.WindowsInstance{}
		if err := Client.Get(ctx, client.ObjectKey{Name: name}, wi); err != nil {
			return err
		}
		mutate(wi)
		return Client.Update(ctx, wi)
	})
}
