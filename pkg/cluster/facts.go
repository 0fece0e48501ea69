package cluster

import (
	"context"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Endpoint is how a kubelet outside the cluster network reaches the API
// server: its URL and the CA that signed its serving certificate.
type Endpoint struct {
	URL    string
	CACert []byte
	// Source says where it came from, for the start-up log.
	Source string
}

// DiscoverEndpoint finds the API server endpoint for kubelets: the
// override when given; else the kube-public/cluster-info ConfigMap that
// kubeadm (and kind) publish; else the operator's own client config, which
// is right when the operator runs outside the cluster (as in the demo).
//
// kubeadm lets only system:anonymous read cluster-info (Role and
// RoleBinding kubeadm:bootstrap-signer-clusterinfo), as `kubeadm join`
// does; a service account is Forbidden. So the ConfigMap is read first
// without credentials, over the same TLS trust as cfg, and then with the
// operator's identity, for clusters where anonymous requests are turned
// off and an admin granted the operator access instead.
func DiscoverEndpoint(ctx context.Context, cs CoreClient, cfg *rest.Config, overrideURL string) (Endpoint, error) {
	ca, err := caFromConfig(cfg)
	if err != nil {
		return Endpoint{}, err
	}
	if overrideURL != "" {
		return Endpoint{URL: overrideURL, CACert: ca, Source: "--api-server-url"}, nil
	}
	anon, err := corev1client.NewForConfig(rest.AnonymousClientConfig(cfg))
	if err != nil {
		return Endpoint{}, fmt.Errorf("anonymous client: %w", err)
	}
	for _, c := range []struct {
		core corev1client.CoreV1Interface
		how  string
	}{{anon, "anonymously"}, {cs.CoreV1(), "as the operator"}} {
		cm, err := c.core.ConfigMaps(metav1.NamespacePublic).Get(ctx, ClusterInfoName, metav1.GetOptions{})
		switch {
		case err == nil:
			if ep, ok := fromClusterInfo(cm); ok {
				ep.Source += " (read " + c.how + ")"
				return ep, nil
			}
		case apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
			// Not published, or not readable this way: try the next.
		default:
			return Endpoint{}, fmt.Errorf("read kube-public/%s %s: %w", ClusterInfoName, c.how, err)
		}
	}
	if len(ca) == 0 {
		return Endpoint{}, fmt.Errorf("no CA for kubelets: set --api-server-url and give the client config a CA")
	}
	return Endpoint{URL: cfg.Host, CACert: ca, Source: "client config"}, nil
}

// ClusterInfoName is the kube-public ConfigMap that kubeadm and kind
// publish with the API server's URL and CA.
const ClusterInfoName = "cluster-info"

func fromClusterInfo(cm *corev1.ConfigMap) (Endpoint, bool) {
	kc, err := clientcmd.Load([]byte(cm.Data["kubeconfig"]))
	if err != nil {
		return Endpoint{}, false
	}
	for _, c := range kc.Clusters {
		if c.Server != "" && len(c.CertificateAuthorityData) > 0 {
			return Endpoint{URL: c.Server, CACert: c.CertificateAuthorityData, Source: "kube-public/" + ClusterInfoName}, true
		}
	}
	return Endpoint{}, false
}

func caFromConfig(cfg *rest.Config) ([]byte, error) {
	if len(cfg.CAData) > 0 {
		return cfg.CAData, nil
	}
	if cfg.CAFile != "" {
		b, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		return b, nil
	}
	return nil, nil
}

// DNSServiceIP is the ClusterIP of kube-system/kube-dns (CoreDNS), or ""
// when there is no such Service.
func DNSServiceIP(ctx context.Context, cs CoreClient) (string, error) {
	svc, err := cs.CoreV1().Services(metav1.NamespaceSystem).Get(ctx, "kube-dns", metav1.GetOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read kube-system/kube-dns: %w", err)
	}
	return svc.Spec.ClusterIP, nil
}
