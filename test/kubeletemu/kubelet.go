// Package kubeletemu emulates a Windows kubelet closely enough that the
// operator can be tested end to end without Windows: started by the
// simulated host's service manager when the kubelet service starts, it reads
// its flags, bootstrap kubeconfig and KubeletConfiguration from the host's
// virtual disk, does a real TLS bootstrap against the API server (a client
// CSR with signer kubernetes.io/kube-apiserver-client-kubelet, then its own
// kubeconfig), registers its Node with the labels and taints a kubelet
// would, asks for a serving certificate, keeps its Lease fresh and reports
// Ready only while a CNI configuration exists on the disk. With
// --cloud-provider=external it behaves as a kubelet whose Node a cloud
// controller manager initialises: the Node registers with the
// node.cloudprovider.kubernetes.io/uninitialized taint and the
// provided-node-ip annotation, and addresses the Node has are left to the
// cloud controller manager (which tests must play: nothing here removes the
// taint). Everything after
// the bootstrap uses the node's own credentials, so the Node authorizer and
// NodeRestriction apply as they do to a real kubelet.
//
// The kubelet's HTTPS port serves the node log query (/logs/, see
// serveLogs) with the kubelet's authentication and authorization; it
// listens on a loopback port of its own (Config.ListenAddress) that the
// Node reports in its daemon endpoints.
//
// Not emulated: pods, containers, client certificate rotation, volume and
// image management, the kubelet's other HTTPS endpoints, and the Windows
// event log (every service's log is looked up in files).
package kubeletemu

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/certificate/csr"
	"k8s.io/client-go/util/keyutil"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/openwmco/wmco/pkg/platform"
)

// Disk is the part of the host's file system the kubelet uses.
type Disk interface {
	ReadFile(path string) ([]byte, error)
	WriteFile(path string, data []byte) error
	MkdirAll(path string) error
	// ReadDir returns the names of a directory's entries.
	ReadDir(path string) ([]fs.DirEntry, error)
}

// Host describes the machine the kubelet runs on.
type Host struct {
	Hostname  string
	Addresses []string
	OSBuild   int
}

// Config starts one kubelet.
type Config struct {
	// Args is the kubelet's command line, without the binary.
	Args []string
	Disk Disk
	Host Host
	// Version reported in the Node's status (default v1.37.2).
	Version string
	// LeaseDuration of the node Lease (default 40s, as the kubelet); it is
	// renewed every quarter of it.
	LeaseDuration time.Duration
	// StatusInterval between Node status updates (default 10s).
	StatusInterval time.Duration
	// CNIConfDir is where a CNI configuration makes the node Ready
	// (default C:\k\cni\config).
	CNIConfDir string
	// Log receives one line per step; nil discards.
	Log io.Writer
	// ListenAddress is where the kubelet's HTTPS port (the node log query,
	// /logs/) listens; default "127.0.0.1:0", a port of its own, which
	// the Node reports in status.daemonEndpoints.kubeletEndpoint as a
	// kubelet reports its --port. The API server reaches it through the
	// local control plane's kubelet proxy (localcluster
	// Options.KubeletProxy).
	ListenAddress string
}

// flags are the kubelet command-line flags the emulator understands.
type flags struct {
	config, bootstrapKubeconfig, kubeconfig, certDir string
	hostnameOverride, nodeIP                         string
	cloudProvider                                    string
	nodeLabels                                       map[string]string
}

// ParseArgs reads the kubelet flags the emulator uses; others are ignored
// as a kubelet would accept them.
func parseArgs(args []string) (flags, error) {
	f := flags{certDir: `C:\var\lib\kubelet\pki`, nodeLabels: map[string]string{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		needsVal := map[string]*string{
			"config": &f.config, "bootstrap-kubeconfig": &f.bootstrapKubeconfig, "kubeconfig": &f.kubeconfig,
			"cert-dir": &f.certDir, "hostname-override": &f.hostnameOverride, "node-ip": &f.nodeIP,
			"cloud-provider": &f.cloudProvider,
		}
		dst, known := needsVal[name]
		if !known && name != "node-labels" {
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return f, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			val = args[i]
		}
		if name == "node-labels" {
			for _, kv := range strings.Split(val, ",") {
				if kv == "" {
					continue
				}
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return f, fmt.Errorf("--node-labels: %q is not key=value", kv)
				}
				f.nodeLabels[k] = v
			}
			continue
		}
		*dst = val
	}
	if f.config == "" || f.kubeconfig == "" {
		return f, errors.New("--config and --kubeconfig are required")
	}
	if f.cloudProvider != "" && f.cloudProvider != platform.External {
		// The kubelet has no in-tree cloud providers any more.
		return f, fmt.Errorf("--cloud-provider=%s: only %q is supported", f.cloudProvider, platform.External)
	}
	return f, nil
}

// kubelet is one running emulated kubelet.
type kubelet struct {
	cfg      Config
	flags    flags
	kc       kubeletv1beta1.KubeletConfiguration
	nodeName string
	client   kubernetes.Interface
	// port is the kubelet's HTTPS port.
	port int32
	// clientCAs verify client certificates (authentication.x509).
	clientCAs *x509.CertPool
}

func (k *kubelet) logf(format string, args ...any) {
	if k.cfg.Log != nil {
		fmt.Fprintf(k.cfg.Log, "kubelet[%s]: "+format+"\n", append([]any{k.nodeName}, args...)...)
	}
}

// Run is the kubelet process: it returns when ctx ends (the service stops
// or the host reboots) or when start-up fails.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Version == "" {
		cfg.Version = "v1.37.2"
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = 40 * time.Second
	}
	if cfg.StatusInterval == 0 {
		cfg.StatusInterval = 10 * time.Second
	}
	if cfg.CNIConfDir == "" {
		cfg.CNIConfDir = `C:\k\cni\config`
	}
	f, err := parseArgs(cfg.Args)
	if err != nil {
		return err
	}
	k := &kubelet{cfg: cfg, flags: f}
	k.nodeName = strings.ToLower(cfg.Host.Hostname)
	if f.hostnameOverride != "" {
		k.nodeName = f.hostnameOverride
	}
	raw, err := cfg.Disk.ReadFile(f.config)
	if err != nil {
		return fmt.Errorf("read kubelet config %s: %w", f.config, err)
	}
	if err := yaml.UnmarshalStrict(raw, &k.kc); err != nil {
		return fmt.Errorf("parse kubelet config %s: %w", f.config, err)
	}
	if err := k.ensureClientCert(ctx); err != nil {
		return err
	}
	if cfg.ListenAddress == "" {
		cfg.ListenAddress = "127.0.0.1:0"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.ListenAddress, err)
	}
	defer func() { _ = ln.Close() }()
	k.port = int32(ln.Addr().(*net.TCPAddr).Port) //nolint:gosec // a TCP port fits
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- k.serve(ctx, ln) }()
	if err := k.registerNode(ctx); err != nil {
		return err
	}
	if k.kc.ServerTLSBootstrap {
		go k.requestServingCert(ctx)
	}
	go func() {
		if err := <-served; err != nil && ctx.Err() == nil {
			k.logf("HTTPS server: %v", err)
		}
	}()
	return k.heartbeat(ctx)
}

// ensureClientCert loads the node's kubeconfig, or performs the TLS
// bootstrap when it has none yet.
func (k *kubelet) ensureClientCert(ctx context.Context) error {
	if cfg, err := k.loadKubeconfig(k.flags.kubeconfig); err == nil {
		k.client, err = kubernetes.NewForConfig(cfg)
		return err
	}
	if k.flags.bootstrapKubeconfig == "" {
		return fmt.Errorf("no kubeconfig at %s and no --bootstrap-kubeconfig", k.flags.kubeconfig)
	}
	bootCfg, err := k.loadKubeconfig(k.flags.bootstrapKubeconfig)
	if err != nil {
		return fmt.Errorf("bootstrap kubeconfig: %w", err)
	}
	boot, err := kubernetes.NewForConfig(bootCfg)
	if err != nil {
		return err
	}
	k.logf("requesting a client certificate (TLS bootstrap)")
	certPEM, keyPEM, err := k.requestCert(ctx, boot, certificatesv1.KubeAPIServerClientKubeletSignerName,
		[]certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}, nil, nil)
	if err != nil {
		return fmt.Errorf("TLS bootstrap: %w", err)
	}
	pemPath := k.flags.certDir + `\kubelet-client-current.pem`
	if err := k.cfg.Disk.MkdirAll(k.flags.certDir); err != nil {
		return err
	}
	if err := k.cfg.Disk.WriteFile(pemPath, append(certPEM, keyPEM...)); err != nil {
		return err
	}
	kcfg := clientcmdapi.NewConfig()
	kcfg.Clusters["default-cluster"] = &clientcmdapi.Cluster{Server: bootCfg.Host, CertificateAuthorityData: bootCfg.CAData}
	kcfg.AuthInfos["default-auth"] = &clientcmdapi.AuthInfo{ClientCertificate: pemPath, ClientKey: pemPath}
	kcfg.Contexts["default-context"] = &clientcmdapi.Context{Cluster: "default-cluster", AuthInfo: "default-auth"}
	kcfg.CurrentContext = "default-context"
	data, err := clientcmd.Write(*kcfg)
	if err != nil {
		return err
	}
	if err := k.cfg.Disk.WriteFile(k.flags.kubeconfig, data); err != nil {
		return err
	}
	k.logf("client certificate issued; kubeconfig written")
	cfg, err := k.loadKubeconfig(k.flags.kubeconfig)
	if err != nil {
		return err
	}
	k.client, err = kubernetes.NewForConfig(cfg)
	return err
}

// loadKubeconfig reads a kubeconfig and the files it names from the
// virtual disk (client-go would read the real file system).
func (k *kubelet) loadKubeconfig(path string) (*rest.Config, error) {
	raw, err := k.cfg.Disk.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kc, err := clientcmd.Load(raw)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	for _, ai := range kc.AuthInfos {
		if ai.ClientCertificate != "" {
			if ai.ClientCertificateData, err = k.cfg.Disk.ReadFile(ai.ClientCertificate); err != nil {
				return nil, err
			}
			ai.ClientCertificate = ""
		}
		if ai.ClientKey != "" {
			if ai.ClientKeyData, err = k.cfg.Disk.ReadFile(ai.ClientKey); err != nil {
				return nil, err
			}
			ai.ClientKey = ""
		}
	}
	for _, c := range kc.Clusters {
		if c.CertificateAuthority != "" {
			if c.CertificateAuthorityData, err = k.cfg.Disk.ReadFile(c.CertificateAuthority); err != nil {
				return nil, err
			}
			c.CertificateAuthority = ""
		}
	}
	return clientcmd.NewDefaultClientConfig(*kc, nil).ClientConfig()
}

// requestCert creates a CSR for system:node:<name> and waits for it to be
// approved and issued. Like the kubelet, it uses an ECDSA key, so the
// usages carry no key encipherment.
func (k *kubelet) requestCert(ctx context.Context, client kubernetes.Interface, signer string, usages []certificatesv1.KeyUsage, dns []string, ips []net.IP) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: "system:node:" + k.nodeName, Organization: []string{"system:nodes"}},
		DNSNames: dns, IPAddresses: ips,
	}, key)
	if err != nil {
		return nil, nil, err
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	name, uid, err := csr.RequestCertificateWithContext(ctx, client, csrPEM, "", signer, nil, usages, key)
	if err != nil {
		return nil, nil, err
	}
	k.logf("created CSR %s (signer %s); waiting for approval", name, signer)
	certPEM, err = csr.WaitForCertificate(ctx, client, name, uid)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = keyutil.MarshalPrivateKeyToPEM(key)
	return certPEM, keyPEM, err
}

func (k *kubelet) requestServingCert(ctx context.Context) {
	var ips []net.IP
	for _, a := range k.addresses() {
		ips = append(ips, net.ParseIP(a))
	}
	dns := []string{k.nodeName}
	if h := strings.ToLower(k.cfg.Host.Hostname); h != k.nodeName {
		dns = append(dns, h)
	}
	certPEM, keyPEM, err := k.requestCert(ctx, k.client, certificatesv1.KubeletServingSignerName,
		[]certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}, dns, ips)
	if err != nil {
		if ctx.Err() == nil {
			k.logf("serving certificate: %v", err)
		}
		return
	}
	if err := k.cfg.Disk.WriteFile(k.flags.certDir+`\kubelet-server-current.pem`, append(certPEM, keyPEM...)); err != nil {
		k.logf("write serving certificate: %v", err)
		return
	}
	k.logf("serving certificate issued")
}

func (k *kubelet) addresses() []string {
	if k.flags.nodeIP != "" {
		return strings.Split(k.flags.nodeIP, ",")
	}
	return k.cfg.Host.Addresses
}

func (k *kubelet) labels() map[string]string {
	l := map[string]string{
		corev1.LabelOSStable:      "windows",
		corev1.LabelArchStable:    "amd64",
		corev1.LabelHostname:      k.nodeName,
		corev1.LabelWindowsBuild:  "10.0." + strconv.Itoa(k.cfg.Host.OSBuild),
		"beta.kubernetes.io/os":   "windows",
		"beta.kubernetes.io/arch": "amd64",
	}
	for key, v := range k.flags.nodeLabels {
		l[key] = v
	}
	return l
}

// providedNodeIPAnnotation is where a kubelet with --cloud-provider=external
// and --node-ip records the node IP for the cloud controller manager
// (k8s.io/cloud-provider/api AnnotationAlphaProvidedIPAddr).
const providedNodeIPAnnotation = "alpha.kubernetes.io/provided-node-ip"

// externalCloud reports whether a cloud controller manager initialises
// the Node (--cloud-provider=external).
func (k *kubelet) externalCloud() bool { return k.flags.cloudProvider == platform.External }

// registerNode creates the Node as its kubelet would, or adopts the one
// that exists (a restart after a reboot). With --cloud-provider=external
// the Node gets the uninitialized taint besides --register-with-taints'
// (the kubelet's initialNode); an existing Node's taints are left alone,
// so a taint the cloud controller manager removed does not come back.
func (k *kubelet) registerNode(ctx context.Context) error {
	taints := append([]corev1.Taint(nil), k.kc.RegisterWithTaints...)
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: k.nodeName, Labels: k.labels()},
	}
	if k.externalCloud() {
		taints = append(taints, corev1.Taint{Key: platform.UninitializedTaint, Value: "true", Effect: corev1.TaintEffectNoSchedule})
		if k.flags.nodeIP != "" {
			node.Annotations = map[string]string{providedNodeIPAnnotation: k.flags.nodeIP}
		}
	}
	node.Spec.Taints = taints
	_, err := k.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	switch {
	case err == nil:
		k.logf("registered Node with %d taints", len(taints))
	case apierrors.IsAlreadyExists(err):
		k.logf("Node exists; adopting it")
	default:
		return fmt.Errorf("register Node %s: %w", k.nodeName, err)
	}
	return k.updateStatus(ctx)
}

func (k *kubelet) cniReady() bool {
	entries, err := k.cfg.Disk.ReadDir(k.cfg.CNIConfDir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		n := strings.ToLower(e.Name())
		if !e.IsDir() && (strings.HasSuffix(n, ".conf") || strings.HasSuffix(n, ".conflist") || strings.HasSuffix(n, ".json")) {
			return true
		}
	}
	return false
}

func (k *kubelet) updateStatus(ctx context.Context) error {
	node, err := k.client.CoreV1().Nodes().Get(ctx, k.nodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now}
	if !k.cniReady() {
		ready.Status, ready.Reason = corev1.ConditionFalse, "KubeletNotReady"
		ready.Message = "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"
	}
	conds := []corev1.NodeCondition{ready}
	for t, reason := range map[corev1.NodeConditionType]string{
		corev1.NodeMemoryPressure: "KubeletHasSufficientMemory",
		corev1.NodeDiskPressure:   "KubeletHasNoDiskPressure",
		corev1.NodePIDPressure:    "KubeletHasSufficientPID",
	} {
		conds = append(conds, corev1.NodeCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason,
			LastHeartbeatTime: now, LastTransitionTime: now})
	}
	sort.Slice(conds[1:], func(i, j int) bool { return conds[1+i].Type < conds[1+j].Type })
	for i, c := range conds { // keep transition times when the status is unchanged
		for _, old := range node.Status.Conditions {
			if old.Type == c.Type && old.Status == c.Status {
				conds[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	status := corev1.NodeStatus{Conditions: conds, Addresses: k.nodeAddresses(node)}
	status.DaemonEndpoints.KubeletEndpoint.Port = k.port
	status.NodeInfo = corev1.NodeSystemInfo{
		OperatingSystem: "windows", Architecture: "amd64", KubeletVersion: k.cfg.Version,
		OSImage: "Windows Server", KernelVersion: "10.0." + strconv.Itoa(k.cfg.Host.OSBuild) + ".1",
		ContainerRuntimeVersion: "containerd://1.7.0",
	}
	status.Capacity = corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("16Gi"), corev1.ResourcePods: resource.MustParse("110"),
	}
	status.Allocatable = status.Capacity
	// A patch of the status alone, as the kubelet sends: a full update
	// would carry the labels as read, and NodeRestriction refuses a node
	// request that differs from the stored labels (the operator's worker
	// role label, added meanwhile).
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return err
	}
	_, err = k.client.CoreV1().Nodes().Patch(ctx, k.nodeName, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}

// nodeAddresses are the addresses a status update posts; nil leaves the
// Node's as they are. As the kubelet's NodeAddress setter
// (pkg/kubelet/nodestatus/setters.go, v1.37): with --cloud-provider=external
// the addresses a Node already has are the cloud controller manager's
// and are never replaced (the kubelet only fills them in until the CCM
// does: the --node-ip addresses and the host name, or the host name
// alone without --node-ip); without it the kubelet posts its own at
// every update.
func (k *kubelet) nodeAddresses(node *corev1.Node) []corev1.NodeAddress {
	hostname := corev1.NodeAddress{Type: corev1.NodeHostName, Address: strings.ToLower(k.cfg.Host.Hostname)}
	if k.externalCloud() {
		if len(node.Status.Addresses) > 0 {
			return nil
		}
		if k.flags.nodeIP == "" {
			return []corev1.NodeAddress{hostname}
		}
	}
	var addrs []corev1.NodeAddress
	for _, a := range k.addresses() {
		addrs = append(addrs, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a})
	}
	return append(addrs, hostname)
}

// Start-up readiness, as the kubelet's fastStatusUpdateOnce
// (pkg/kubelet/kubelet.go, v1.37): from its start until the Node is Ready,
// at most nodeReadyGracePeriod, the kubelet asks the runtime for its
// status every 100 ms and posts the Node's status as soon as it would
// turn Ready (containerd notices a new CNI configuration at once: its
// CNI configuration syncer watches the directory).
const (
	fastStatusInterval   = 100 * time.Millisecond
	nodeReadyGracePeriod = 120 * time.Second
)

// heartbeat renews the Lease and posts status until ctx ends.
func (k *kubelet) heartbeat(ctx context.Context) error {
	renew := k.cfg.LeaseDuration / 4
	leaseTick := time.NewTicker(renew)
	defer leaseTick.Stop()
	statusTick := time.NewTicker(k.cfg.StatusInterval)
	defer statusTick.Stop()
	lastReady := k.cniReady()
	// The start-up loop runs until the first Ready report (registerNode
	// made it already when the network was ready at start).
	var fast <-chan time.Time
	if !lastReady {
		fastTick := time.NewTicker(fastStatusInterval)
		defer fastTick.Stop()
		fast = fastTick.C
	}
	fastUntil := time.Now().Add(nodeReadyGracePeriod)
	k.renewLease(ctx)
	for {
		select {
		case <-ctx.Done():
			k.logf("stopping")
			return nil
		case now := <-fast:
			switch {
			case now.After(fastUntil):
				k.logf("Node not becoming ready in time after startup")
				fast = nil
			case k.cniReady():
				// A failed post is tried again at the next tick, as
				// fastNodeStatusUpdate does.
				if err := k.updateStatus(ctx); err != nil {
					if ctx.Err() == nil {
						k.logf("update status: %v", err)
					}
					continue
				}
				lastReady, fast = true, nil
			}
		case <-leaseTick.C:
			k.renewLease(ctx)
			// A change of network readiness is posted at once, as the
			// kubelet's runtime status check would.
			if now := k.cniReady(); now != lastReady {
				lastReady = now
				k.postStatus(ctx)
			}
		case <-statusTick.C:
			k.postStatus(ctx)
		}
	}
}

func (k *kubelet) postStatus(ctx context.Context) {
	if err := k.updateStatus(ctx); err != nil && ctx.Err() == nil {
		k.logf("update status: %v", err)
	}
}

func (k *kubelet) renewLease(ctx context.Context) {
	leases := k.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	secs := int32(k.cfg.LeaseDuration / time.Second)
	lease, err := leases.Get(ctx, k.nodeName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		node, err := k.client.CoreV1().Nodes().Get(ctx, k.nodeName, metav1.GetOptions{})
		if err != nil {
			k.logf("get Node for Lease owner: %v", err)
			return
		}
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: k.nodeName, Namespace: corev1.NamespaceNodeLease,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &k.nodeName, LeaseDurationSeconds: &secs, RenewTime: &now},
		}
		_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
		if err != nil && ctx.Err() == nil {
			k.logf("create Lease: %v", err)
		}
	case err != nil:
		if ctx.Err() == nil {
			k.logf("get Lease: %v", err)
		}
	default:
		lease.Spec.RenewTime, lease.Spec.LeaseDurationSeconds, lease.Spec.HolderIdentity = &now, &secs, &k.nodeName
		if _, err := leases.Update(ctx, lease, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
			k.logf("renew Lease: %v", err)
		}
	}
}
