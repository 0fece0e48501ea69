package openshiftcrds

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	operatorv1 "github.com/openshift/api/operator/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/test/localcluster"
)

// Defaults of OVNOptions, as an installer leaves a cluster.
var (
	// DefaultClusterNetwork is OpenShift's default pod network.
	DefaultClusterNetwork = configv1.ClusterNetworkEntry{CIDR: "10.128.0.0/14", HostPrefix: 23}
	// DefaultHybridOverlay is the hybrid overlay upstream WMCO's docs
	// configure: 10.132.0.0/14 in /23 per node, VXLAN port 9898.
	DefaultHybridOverlay = operatorv1.HybridOverlayConfig{
		HybridClusterNetwork:   []operatorv1.ClusterNetworkEntry{{CIDR: "10.132.0.0/14", HostPrefix: 23}},
		HybridOverlayVXLANPort: ptr.To[uint32](9898),
	}
)

// OVNOptions shape an OVN-Kubernetes OpenShift cluster's configuration.
type OVNOptions struct {
	// Name is the cluster's name: api.<Name>.example.test (default "ocp").
	Name string
	// APIServerInternalURL is the Infrastructure's
	// status.apiServerInternalURI, the URL kubelets use: the local API
	// server in tests whose kubelets must reach it (required).
	APIServerInternalURL string
	// ClusterNetwork of the Linux pods (default DefaultClusterNetwork).
	ClusterNetwork []configv1.ClusterNetworkEntry
	// ServiceNetwork must hold the local API server's service range so
	// the DNS Service gets its ClusterIP (default localcluster.ServiceCIDR).
	ServiceNetwork []string
	// DNSIP is the DNS Service's ClusterIP (default the tenth address of
	// localcluster.ServiceCIDR, 10.0.0.10).
	DNSIP string
	// HybridOverlay is OVN-Kubernetes' hybridOverlayConfig; nil leaves
	// it out, as a cluster without Windows support has it.
	HybridOverlay *operatorv1.HybridOverlayConfig
	// Proxy is the Proxy's status (zero: no proxy).
	Proxy configv1.ProxyStatus
}

// OVNCluster is the configuration of an OVN-Kubernetes OpenShift cluster
// made in a test control plane: Infrastructure, Network (config and
// operator), Proxy, the DNS operator's Service and the kubelet client CA
// ConfigMap, as a real cluster has them. The CRDs of ClusterConfigFiles
// must be installed.
type OVNCluster struct {
	// Client writes the objects; its scheme knows config.openshift.io and
	// operator.openshift.io.
	Client client.Client
	// Options the cluster was made with, defaults filled in.
	Options OVNOptions
	// KubeletClientCAPEM is the kube-apiserver-to-kubelet-client-ca bundle.
	KubeletClientCAPEM []byte

	madeInfra bool
}

// NewOVNCluster creates the objects (an existing Infrastructure object,
// say machinesim's, only gets its internal API URL set). Delete removes
// them.
func NewOVNCluster(ctx context.Context, cfg *rest.Config, o OVNOptions) (*OVNCluster, error) {
	if o.APIServerInternalURL == "" {
		return nil, errors.New("openshiftcrds: OVNOptions.APIServerInternalURL is required")
	}
	if o.Name == "" {
		o.Name = "ocp"
	}
	if len(o.ClusterNetwork) == 0 {
		o.ClusterNetwork = []configv1.ClusterNetworkEntry{DefaultClusterNetwork}
	}
	if len(o.ServiceNetwork) == 0 {
		o.ServiceNetwork = []string{localcluster.ServiceCIDR}
	}
	if o.DNSIP == "" {
		o.DNSIP = "10.0.0.10"
	}
	s, err := core.NewScheme()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		return nil, err
	}
	ca, err := NewCAPEM("kube-apiserver-to-kubelet-signer")
	if err != nil {
		return nil, err
	}
	oc := &OVNCluster{Client: c, Options: o, KubeletClientCAPEM: ca}
	for _, step := range []func(context.Context) error{oc.infrastructure, oc.network, oc.operatorNetwork, oc.proxy, oc.dns, oc.kubeletClientCA} {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	return oc, nil
}

func (oc *OVNCluster) infrastructure(ctx context.Context) error {
	infra := &configv1.Infrastructure{}
	err := oc.Client.Get(ctx, client.ObjectKey{Name: cluster.ConfigName}, infra)
	switch {
	case apierrors.IsNotFound(err):
		infra = &configv1.Infrastructure{
			ObjectMeta: metav1.ObjectMeta{Name: cluster.ConfigName},
			Spec:       configv1.InfrastructureSpec{PlatformSpec: configv1.PlatformSpec{Type: configv1.NonePlatformType}},
		}
		if err := oc.Client.Create(ctx, infra); err != nil {
			return fmt.Errorf("openshiftcrds: create Infrastructure: %w", err)
		}
		oc.madeInfra = true
		infra.Status = configv1.InfrastructureStatus{
			InfrastructureName: oc.Options.Name + "-x7k2p",
			//nolint:staticcheck // deprecated for platformStatus.type, yet installers set both.
			Platform:               configv1.NonePlatformType,
			PlatformStatus:         &configv1.PlatformStatus{Type: configv1.NonePlatformType},
			APIServerURL:           "https://api." + oc.Options.Name + ".example.test:6443",
			ControlPlaneTopology:   configv1.HighlyAvailableTopologyMode,
			InfrastructureTopology: configv1.HighlyAvailableTopologyMode,
		}
	case err != nil:
		return fmt.Errorf("openshiftcrds: get Infrastructure: %w", err)
	}
	infra.Status.APIServerInternalURL = oc.Options.APIServerInternalURL
	if err := oc.Client.Status().Update(ctx, infra); err != nil {
		return fmt.Errorf("openshiftcrds: Infrastructure status: %w", err)
	}
	return nil
}

func (oc *OVNCluster) network(ctx context.Context) error {
	// networks.config.openshift.io has no status subresource: the status
	// is written with the object.
	n := &configv1.Network{
		ObjectMeta: metav1.ObjectMeta{Name: cluster.ConfigName},
		Spec: configv1.NetworkSpec{
			ClusterNetwork: oc.Options.ClusterNetwork, ServiceNetwork: oc.Options.ServiceNetwork, NetworkType: cluster.NetworkTypeOVNKubernetes,
		},
		Status: configv1.NetworkStatus{
			ClusterNetwork: oc.Options.ClusterNetwork, ServiceNetwork: oc.Options.ServiceNetwork, NetworkType: cluster.NetworkTypeOVNKubernetes, ClusterNetworkMTU: 1400,
		},
	}
	if err := oc.Client.Create(ctx, n); err != nil {
		return fmt.Errorf("openshiftcrds: create networks.config.openshift.io/%s: %w", cluster.ConfigName, err)
	}
	return nil
}

func (oc *OVNCluster) operatorNetwork(ctx context.Context) error {
	cn := make([]operatorv1.ClusterNetworkEntry, len(oc.Options.ClusterNetwork))
	for i, e := range oc.Options.ClusterNetwork {
		cn[i] = operatorv1.ClusterNetworkEntry{CIDR: e.CIDR, HostPrefix: e.HostPrefix}
	}
	n := &operatorv1.Network{
		ObjectMeta: metav1.ObjectMeta{Name: cluster.ConfigName},
		Spec: operatorv1.NetworkSpec{
			OperatorSpec:   operatorv1.OperatorSpec{ManagementState: operatorv1.Managed},
			ClusterNetwork: cn, ServiceNetwork: oc.Options.ServiceNetwork,
			DefaultNetwork: operatorv1.DefaultNetworkDefinition{
				Type:                operatorv1.NetworkTypeOVNKubernetes,
				OVNKubernetesConfig: &operatorv1.OVNKubernetesConfig{HybridOverlayConfig: oc.Options.HybridOverlay.DeepCopy()},
			},
		},
	}
	if err := oc.Client.Create(ctx, n); err != nil {
		return fmt.Errorf("openshiftcrds: create networks.operator.openshift.io/%s: %w", cluster.ConfigName, err)
	}
	return nil
}

func (oc *OVNCluster) proxy(ctx context.Context) error {
	p := &configv1.Proxy{ObjectMeta: metav1.ObjectMeta{Name: cluster.ConfigName}}
	if err := oc.Client.Create(ctx, p); err != nil {
		return fmt.Errorf("openshiftcrds: create Proxy: %w", err)
	}
	return oc.SetProxy(ctx, oc.Options.Proxy)
}

func (oc *OVNCluster) dns(ctx context.Context) error {
	if err := oc.ensureNamespace(ctx, cluster.DNSNamespace); err != nil {
		return err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: cluster.DNSServiceName, Namespace: cluster.DNSNamespace},
		Spec: corev1.ServiceSpec{
			ClusterIP: oc.Options.DNSIP,
			Selector:  map[string]string{"dns.operator.openshift.io/daemonset-dns": "default"},
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("dns-tcp")},
			},
		},
	}
	if err := oc.Client.Create(ctx, svc); err != nil {
		return fmt.Errorf("openshiftcrds: create Service %s/%s: %w", cluster.DNSNamespace, cluster.DNSServiceName, err)
	}
	return nil
}

func (oc *OVNCluster) kubeletClientCA(ctx context.Context) error {
	if err := oc.ensureNamespace(ctx, cluster.KubeletClientCANamespace); err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: cluster.KubeletClientCAName, Namespace: cluster.KubeletClientCANamespace},
		Data:       map[string]string{cluster.CABundleKey: string(oc.KubeletClientCAPEM)},
	}
	if err := oc.Client.Create(ctx, cm); err != nil {
		return fmt.Errorf("openshiftcrds: create ConfigMap %s/%s: %w", cluster.KubeletClientCANamespace, cluster.KubeletClientCAName, err)
	}
	return nil
}

func (oc *OVNCluster) ensureNamespace(ctx context.Context, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := oc.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("openshiftcrds: create namespace %s: %w", name, err)
	}
	return nil
}

// SetProxy writes the Proxy's status, as the cluster's network operator
// does from its spec.
func (oc *OVNCluster) SetProxy(ctx context.Context, status configv1.ProxyStatus) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := &configv1.Proxy{}
		if err := oc.Client.Get(ctx, client.ObjectKey{Name: cluster.ConfigName}, p); err != nil {
			return err
		}
		p.Status = status
		return oc.Client.Status().Update(ctx, p)
	})
}

// SetHybridOverlay sets or (nil) removes OVN-Kubernetes' hybridOverlayConfig.
func (oc *OVNCluster) SetHybridOverlay(ctx context.Context, h *operatorv1.HybridOverlayConfig) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n := &operatorv1.Network{}
		if err := oc.Client.Get(ctx, client.ObjectKey{Name: cluster.ConfigName}, n); err != nil {
			return err
		}
		if n.Spec.DefaultNetwork.OVNKubernetesConfig == nil {
			n.Spec.DefaultNetwork.OVNKubernetesConfig = &operatorv1.OVNKubernetesConfig{}
		}
		n.Spec.DefaultNetwork.OVNKubernetesConfig.HybridOverlayConfig = h.DeepCopy()
		return oc.Client.Update(ctx, n)
	})
}

// InjectTrustedCA writes bundle into the ConfigMap namespace/name as the
// Cluster Network Operator does: only into a ConfigMap labelled
// cluster.TrustedCAInjectLabel=true (an error otherwise, or when it does not
// exist).
func (oc *OVNCluster) InjectTrustedCA(ctx context.Context, namespace, name string, bundle []byte) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm := &corev1.ConfigMap{}
		if err := oc.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, cm); err != nil {
			return err
		}
		if cm.Labels[cluster.TrustedCAInjectLabel] != "true" {
			return fmt.Errorf("openshiftcrds: ConfigMap %s/%s lacks label %s=true: the network operator injects nothing", namespace, name, cluster.TrustedCAInjectLabel)
		}
		cm.Data = map[string]string{cluster.CABundleKey: string(bundle)}
		return oc.Client.Update(ctx, cm)
	})
}

// Delete removes what NewOVNCluster made (and the namespaces it made);
// an Infrastructure object it did not create stays.
func (oc *OVNCluster) Delete(ctx context.Context) error {
	objs := []client.Object{
		&configv1.Network{ObjectMeta: metav1.ObjectMeta{Name: cluster.ConfigName}},
		&operatorv1.Network{ObjectMeta: metav1.ObjectMeta{Name: cluster.ConfigName}},
		&configv1.Proxy{ObjectMeta: metav1.ObjectMeta{Name: cluster.ConfigName}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: cluster.DNSServiceName, Namespace: cluster.DNSNamespace}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cluster.KubeletClientCAName, Namespace: cluster.KubeletClientCANamespace}},
	}
	if oc.madeInfra {
		objs = append(objs, &configv1.Infrastructure{ObjectMeta: metav1.ObjectMeta{Name: cluster.ConfigName}})
	}
	var errs []error
	for _, o := range objs {
		if err := oc.Client.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// NewCAPEM returns a new self-signed CA certificate named cn, PEM (its
// key is thrown away).
func NewCAPEM(cn string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
