// Package machinesim is a simulated cloud for tests: run in-process against
// a (local) control plane, it plays the parts of OpenShift's Machine API
// and of a cloud controller manager, so Windows MachineSets scale up and
// down without a cloud.
//
//   - The MachineSet controller keeps spec.replicas Machines from the
//     template and reports the MachineSet's status.
//   - The Machine actuator boots a simulated Windows VM (test/winsim with
//     the node agent, test/winsim/simagent) for each Machine from the real
//     first-boot userData of its providerSpec's userDataSecret, interpreted
//     by test/firstboot, and reports providerID, addresses and phase as the
//     platform's Machine API provider does: phase Provisioning, then
//     Provisioned once the VM is up, Running once a Node is linked.
//     Deleting a Machine follows the
//     Machine API: the preDrain hooks hold it, the Node is drained, the
//     preTerminate hooks hold it, the VM is destroyed (its disk and
//     services recorded first, for clean-before-destroy assertions), the
//     Node is deleted if it is still there, the finalizer is removed.
//   - On platforms whose kubelets run with --cloud-provider=external, the
//     cloud controller manager initialises a Node by the platform's rule
//     (see pkg/platform) and removes its uninitialized taint; the nodelink
//     part links Nodes to Machines (status.nodeRef).
//
// Every VM's sshd listens on the same port (Options.SSHPort), each on its
// own loopback address (Options.IPPrefix + N, N from 2), like port 22 on
// a cloud's private network. Start picks the port by listening on
// IPPrefix + "1" port 0 and keeps that listener for the Cloud's life: the
// kernel then gives that port to no other socket bound to IPPrefix + "1"
// or to a wildcard address, so another Cloud (of this test binary or of a
// parallel one) with the same prefix picks another port, and the VMs'
// address:port pairs never collide. Within a process, Clouds that run at
// the same time also never share a VM address.
//
// The Machine's InternalIP is that loopback address, which the operator
// dials; the VM's network card (the agent's facts, the kubelet's node IP,
// the Node's addresses the cloud controller manager sets) reports
// NICAddress instead, a documentation address never dialled: a real VM
// has one address for both.
//
// The Cloud owns one namespace (Options.Namespace); tests that share a
// control plane give each Cloud its own. It creates the cluster's
// Infrastructure object (named cluster) with the platform in its status
// if there is none, and deletes it on Stop if it made it; Start fails if
// there is one of another platform, so Clouds of different platforms
// sharing a control plane run one after the other.
package machinesim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	configv1 "github.com/openshift/api/config/v1"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/openwmco/wmco/pkg/platform"
	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// Defaults of Options.
const (
	DefaultNamespace     = "openshift-machine-api"
	DefaultIPPrefix      = "127.0.200."
	DefaultRetryInterval = time.Second
	// InfrastructureName is the name of the cluster's Infrastructure
	// object.
	InfrastructureName = "cluster"
)

// Options configure a Cloud.
type Options struct {
	// Config authenticates as a cluster admin.
	Config *rest.Config
	// Platform is the cloud's platform type (AWS, Azure, VSphere, None);
	// "" is None.
	Platform configv1.PlatformType
	// Namespace holds the Cloud's Machines, MachineSets and userData
	// Secrets; default DefaultNamespace. It is created if absent.
	Namespace string
	// SSHPort is the port every VM's sshd listens on, at its own address;
	// 0 picks a free one (see the package documentation).
	SSHPort int
	// IPPrefix is the first three octets of the VMs' addresses, with the
	// trailing dot, inside 127.0.0.0/8; default DefaultIPPrefix.
	IPPrefix string
	// OSBuild of the VMs' Windows (default winsim's, Server 2022).
	OSBuild int
	// Host tunes each VM's node software.
	Host simagent.Options
	// Hostname, when set, gives a VM's computer name at first boot from
	// its Machine's name, in place of the platform's (EC2AMAZ-XXXXXXX on
	// AWS, the Machine's name cut to 15 characters in upper case on
	// Azure, VSphereTemplateHostname on vSphere, WIN-XXXXXXXXXXX on None).
	Hostname func(machineName string) string
	// RetryInterval is how soon waiting work looks again where no watch
	// brings it back (a missing userData Secret, pods left on a draining
	// Node, a Node the cloud controller manager cannot initialise yet);
	// default DefaultRetryInterval.
	RetryInterval time.Duration
	// Log receives the controllers' and VMs' logs; nil discards them.
	Log io.Writer
}

// Cloud is a running simulated cloud.
type Cloud struct {
	opts    Options
	profile platform.Profile
	client  client.Client
	reader  client.Reader
	cs      kubernetes.Interface
	log     logr.Logger
	slog    *slog.Logger
	reserve net.Listener
	port    int
	cancel  context.CancelFunc
	done    chan struct{}
	// madeInfra is set when Start created the Infrastructure object.
	madeInfra bool

	mu        sync.Mutex
	vms       map[string]*vm // by Machine name
	events    []Event
	snapshots map[string]HostSnapshot // by Machine name
	seen      map[string]bool         // events recorded once, by key
	stopped   bool
}

// Start starts a Cloud; Stop ends it.
func Start(ctx context.Context, opts Options) (*Cloud, error) {
	if opts.Config == nil {
		return nil, errors.New("machinesim: Options.Config is nil")
	}
	if opts.Platform == "" {
		opts.Platform = configv1.NonePlatformType
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if opts.IPPrefix == "" {
		opts.IPPrefix = DefaultIPPrefix
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = DefaultRetryInterval
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Host.Log == nil {
		opts.Host.Log = opts.Log
	}
	if ip := net.ParseIP(opts.IPPrefix + "1"); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("machinesim: IPPrefix %q does not make loopback addresses", opts.IPPrefix)
	}
	profile, _ := platform.Lookup(opts.Platform)
	// The Machine API's finalizer name draws a warning at every write.
	opts.Config = rest.CopyConfig(opts.Config)
	opts.Config.WarningHandler = rest.NoWarnings{}

	// The port reservation: see the package documentation.
	var lc net.ListenConfig
	reserve, err := lc.Listen(ctx, "tcp", net.JoinHostPort(opts.IPPrefix+"1", strconv.Itoa(opts.SSHPort)))
	if err != nil {
		return nil, fmt.Errorf("machinesim: reserve the SSH port: %w", err)
	}
	port := reserve.Addr().(*net.TCPAddr).Port

	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, machinev1beta1.Install, configv1.Install} {
		if err := add(scheme); err != nil {
			_ = reserve.Close()
			return nil, err
		}
	}
	log := zap.New(zap.UseDevMode(true), zap.WriteTo(opts.Log)).WithName("machinesim")
	c := &Cloud{
		opts: opts, profile: profile, log: log, reserve: reserve, port: port,
		slog:      slog.New(slog.NewTextHandler(opts.Log, nil)),
		vms:       map[string]*vm{},
		snapshots: map[string]HostSnapshot{}, seen: map[string]bool{},
		done: make(chan struct{}),
	}
	fail := func(err error) (*Cloud, error) {
		_ = reserve.Close()
		return nil, err
	}
	if c.cs, err = kubernetes.NewForConfig(opts.Config); err != nil {
		return fail(err)
	}
	nsCache := cache.ByObject{Namespaces: map[string]cache.Config{opts.Namespace: {}}}
	mgr, err := ctrl.NewManager(opts.Config, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 log,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&machinev1beta1.Machine{}:    nsCache,
			&machinev1beta1.MachineSet{}: nsCache,
			&corev1.Secret{}:             nsCache,
		}},
		// Tests may run several Clouds, one after the other.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return fail(fmt.Errorf("machinesim: manager: %w", err))
	}
	c.client, c.reader = mgr.GetClient(), mgr.GetAPIReader()
	if err := c.ensureNamespace(ctx); err != nil {
		return fail(err)
	}
	if err := c.ensureInfrastructure(ctx); err != nil {
		return fail(err)
	}
	if err := (&machineSetReconciler{c}).setup(mgr); err != nil {
		return fail(err)
	}
	if err := (&machineReconciler{c}).setup(mgr); err != nil {
		return fail(err)
	}
	if err := (&nodeReconciler{c}).setup(mgr); err != nil {
		return fail(err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	go func() {
		defer close(c.done)
		if err := mgr.Start(runCtx); err != nil {
			c.log.Error(err, "Manager stopped")
		}
	}()
	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	defer syncCancel()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		c.Stop()
		return nil, errors.New("machinesim: caches did not sync")
	}
	c.log.Info("Cloud started", "platform", opts.Platform, "namespace", opts.Namespace, "sshPort", port)
	return c, nil
}

// Stop stops the controllers, destroys every VM (without the Machine API's
// deletion steps: the Machines stay as they are) and deletes the
// Infrastructure object if Start created it. Stop is idempotent.
func (c *Cloud) Stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	c.mu.Unlock()
	c.cancel()
	<-c.done
	c.mu.Lock()
	vms := c.vms
	c.vms = map[string]*vm{}
	c.mu.Unlock()
	for _, v := range vms {
		_ = c.destroy(v)
	}
	_ = c.reserve.Close()
	if c.madeInfra {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		infra := &configv1.Infrastructure{ObjectMeta: metav1.ObjectMeta{Name: InfrastructureName}}
		if err := c.client.Delete(ctx, infra); err != nil && !apierrors.IsNotFound(err) {
			c.log.Error(err, "Cannot delete the Infrastructure object")
		}
	}
}

// Platform is the cloud's platform profile.
func (c *Cloud) Platform() platform.Profile { return c.profile }

// Namespace is the namespace of the Cloud's Machines.
func (c *Cloud) Namespace() string { return c.opts.Namespace }

// SSHPort is the port every VM's sshd listens on.
func (c *Cloud) SSHPort() int { return c.port }

// VM returns the node host of the Machine's VM, or nil when the Machine
// has none (not booted yet, or destroyed).
func (c *Cloud) VM(machine string) *simagent.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := c.vms[machine]; v != nil {
		return v.node
	}
	return nil
}

// Host returns the simulated Windows host of the Machine's VM, or nil.
func (c *Cloud) Host(machine string) *winsim.Host {
	if n := c.VM(machine); n != nil {
		return n.Host
	}
	return nil
}

// ensureNamespace creates the Cloud's namespace if it is absent.
func (c *Cloud) ensureNamespace(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.opts.Namespace}}
	if err := c.client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("machinesim: create namespace %s: %w", c.opts.Namespace, err)
	}
	return nil
}

// ensureInfrastructure creates the Infrastructure object named cluster
// with the platform in its spec and status, unless there is one; one of
// another platform is an error (a cluster has one platform).
func (c *Cloud) ensureInfrastructure(ctx context.Context) error {
	infra := &configv1.Infrastructure{}
	err := c.reader.Get(ctx, client.ObjectKey{Name: InfrastructureName}, infra)
	if err == nil {
		if got := infra.Status.PlatformStatus; got == nil || got.Type != c.opts.Platform {
			return fmt.Errorf("machinesim: the Infrastructure object %s is of platform %v, not %s: a cluster has one platform (stop the other Cloud first)",
				InfrastructureName, platformOf(infra), c.opts.Platform)
		}
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("machinesim: get Infrastructure: %w", err)
	}
	t := c.opts.Platform
	infra = &configv1.Infrastructure{
		ObjectMeta: metav1.ObjectMeta{Name: InfrastructureName},
		Spec:       configv1.InfrastructureSpec{PlatformSpec: configv1.PlatformSpec{Type: t}},
	}
	if err := c.client.Create(ctx, infra); err != nil {
		return fmt.Errorf("machinesim: create Infrastructure: %w", err)
	}
	c.madeInfra = true
	ps := &configv1.PlatformStatus{Type: t}
	switch t {
	case configv1.AWSPlatformType:
		ps.AWS = &configv1.AWSPlatformStatus{Region: awsRegion}
	case configv1.AzurePlatformType:
		ps.Azure = &configv1.AzurePlatformStatus{ResourceGroupName: infraName + "-rg", CloudName: configv1.AzurePublicCloud}
	}
	infra.Status = configv1.InfrastructureStatus{
		InfrastructureName: infraName,
		// Deprecated for platformStatus.type, yet the installer still sets
		// it and older readers use it.
		Platform:               t, //nolint:staticcheck // see above
		PlatformStatus:         ps,
		EtcdDiscoveryDomain:    "",
		APIServerURL:           c.opts.Config.Host,
		APIServerInternalURL:   c.opts.Config.Host,
		ControlPlaneTopology:   configv1.HighlyAvailableTopologyMode,
		InfrastructureTopology: configv1.HighlyAvailableTopologyMode,
	}
	if err := c.client.Status().Update(ctx, infra); err != nil {
		return fmt.Errorf("machinesim: set the Infrastructure status: %w", err)
	}
	return nil
}

func platformOf(infra *configv1.Infrastructure) configv1.PlatformType {
	if infra.Status.PlatformStatus != nil {
		return infra.Status.PlatformStatus.Type
	}
	return infra.Status.Platform //nolint:staticcheck // an object written by an older installer
}

// WindowsMachineSet is a Windows MachineSet of zero replicas, shaped as an
// admin writes one for WMCO: its Machines are labelled
// machine.openshift.io/os-id=Windows and their providerSpec names the
// userData Secret userDataSecret (normally windows-user-data, which the
// operator keeps).
func WindowsMachineSet(namespace, name, userDataSecret string) *machinev1beta1.MachineSet {
	raw, err := json.Marshal(map[string]any{"userDataSecret": map[string]string{"name": userDataSecret}})
	if err != nil {
		panic(err) // a map of strings always marshals
	}
	sel := map[string]string{"machine.openshift.io/cluster-api-machineset": name}
	labels := map[string]string{"machine.openshift.io/cluster-api-machineset": name, "machine.openshift.io/os-id": "Windows"}
	zero := int32(0)
	return &machinev1beta1.MachineSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: machinev1beta1.MachineSetSpec{
			Replicas: &zero,
			Selector: metav1.LabelSelector{MatchLabels: sel},
			Template: machinev1beta1.MachineTemplateSpec{
				ObjectMeta: machinev1beta1.ObjectMeta{Labels: labels},
				Spec:       machinev1beta1.MachineSpec{ProviderSpec: machinev1beta1.ProviderSpec{Value: &runtime.RawExtension{Raw: raw}}},
			},
		},
	}
}

// MachineAddress is the Machine's first status address of type t, or "".
func MachineAddress(m *machinev1beta1.Machine, t corev1.NodeAddressType) string {
	for _, a := range m.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return ""
}
