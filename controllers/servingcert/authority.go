// Package servingcert keeps the serving certificates Prometheus verifies:
// windows_exporter's on every host and the operator's own metrics
// endpoint's, and the ServiceMonitors that scrape them.
//
// On plain Kubernetes the operator is the certificate authority: it keeps
// a CA in the Secret wmco-serving-ca of its namespace (made once, valid
// for ten years; pkg/servingcert), publishes the CA's certificate in the
// ConfigMap wmco-serving-ca (key service-ca.crt), issues every host a
// certificate for its addresses and node name (Exporter, which the
// WindowsInstance controller puts into the host's plan), and keeps the
// metrics endpoint's certificate in the Secret wmco-metrics-tls.
//
// On OpenShift the cluster's service CA signs them: the node metrics
// Service and the wmco-metrics Service carry the
// service.beta.openshift.io/serving-cert-secret-name annotation, the
// service CA writes windows-exporter-tls and wmco-metrics-tls, the
// operator copies windows-exporter-tls to every host, and the ConfigMap
// wmco-serving-ca carries service.beta.openshift.io/inject-cabundle, so
// that the service CA's bundle lands under the same key.
//
// Either way the ServiceMonitors verify with the ConfigMap wmco-serving-ca.
package servingcert

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/openwmco/wmco/controllers/nodemetrics"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	certs "github.com/openwmco/wmco/pkg/servingcert"
)

// Names of the objects in the operator's namespace.
const (
	// CASecretName is the Secret holding the operator's CA (tls.crt,
	// tls.key), plain Kubernetes only.
	CASecretName = "wmco-serving-ca"
	// CAConfigMapName is the ConfigMap publishing the CA that signed the
	// serving certificates, under CAConfigMapKey.
	CAConfigMapName = "wmco-serving-ca"
	// CAConfigMapKey is the key OpenShift's service CA injects its bundle
	// under; the operator uses it for its own CA too.
	CAConfigMapKey = "service-ca.crt"
	// ExporterSecretName is the Secret OpenShift's service CA writes for
	// the node metrics Service, copied to every host.
	ExporterSecretName = "windows-exporter-tls"
	// MetricsServiceName is the Service of the operator's metrics
	// endpoint (config/manager).
	MetricsServiceName = "wmco-metrics"
	// MetricsSecretName is the Secret with the metrics endpoint's
	// certificate: written by the operator on plain Kubernetes, by the
	// service CA on OpenShift.
	MetricsSecretName = "wmco-metrics-tls"

	// ServingCertAnnotation on a Service asks OpenShift's service CA for a
	// serving certificate in the Secret it names.
	ServingCertAnnotation = nodemetrics.ServingCertAnnotation
	// InjectCABundleAnnotation on a ConfigMap asks OpenShift's service CA
	// to write its bundle under CAConfigMapKey.
	InjectCABundleAnnotation = "service.beta.openshift.io/inject-cabundle"
	// CACommonName is the subject of the operator's CA.
	CACommonName = "wmco-serving-ca"
)

// Authority loads the operator's CA from CASecretName, making it once
// when the Secret does not exist. It is safe for concurrent use.
type Authority struct {
	// Client reads the operator namespace's Secrets (the manager's cache)
	// and creates the Secret.
	Client client.Client
	// APIReader reads past the cache, for a Secret just created.
	APIReader client.Reader
	// Namespace is the operator's.
	Namespace string
	// Now is the clock; default time.Now.
	Now func() time.Time

	mu sync.Mutex
	// ca was parsed from the Secret at version.
	ca      *certs.CA
	version string
}

func (a *Authority) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

// CA returns the operator's CA.
func (a *Authority) CA(ctx context.Context) (*certs.CA, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := client.ObjectKey{Namespace: a.Namespace, Name: CASecretName}
	s := &corev1.Secret{}
	err := a.Client.Get(ctx, key, s)
	if apierrors.IsNotFound(err) {
		// The cache may lag behind a Secret made moments ago.
		err = a.APIReader.Get(ctx, key, s)
	}
	if apierrors.IsNotFound(err) {
		if s, err = a.create(ctx); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("get Secret %s: %w", key, err)
	}
	if a.ca != nil && a.version == s.ResourceVersion {
		return a.ca, nil
	}
	ca, err := certs.ParseCA(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w (delete it to make a new CA)", key, err)
	}
	if !a.now().Before(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("secret %s: the CA expired at %s (delete it to make a new CA)", key, ca.Cert.NotAfter.Format(time.RFC3339))
	}
	a.ca, a.version = ca, s.ResourceVersion
	return ca, nil
}

// create makes the CA Secret, or reads the one another writer made.
func (a *Authority) create(ctx context.Context) (*corev1.Secret, error) {
	certPEM, keyPEM, err := certs.NewCA(CACommonName, a.now())
	if err != nil {
		return nil, err
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: CASecretName, Namespace: a.Namespace,
			Labels: map[string]string{nodemetrics.LabelManagedBy: nodemetrics.ManagedByValue},
		},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	}
	ctrl.LoggerFrom(ctx).Info("Creating the serving CA", "secret", klog.KObj(s))
	err = a.Client.Create(ctx, s)
	if apierrors.IsAlreadyExists(err) {
		s = &corev1.Secret{}
		err = a.APIReader.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: CASecretName}, s)
	}
	if err != nil {
		return nil, fmt.Errorf("create Secret %s/%s: %w", a.Namespace, CASecretName, err)
	}
	return s, nil
}

// Exporter gives every host windows_exporter's serving certificate: on
// plain Kubernetes issued by Authority for the host, on OpenShift the
// node metrics Service's from the service CA.
type Exporter struct {
	// Authority is the operator's CA; nil on OpenShift.
	Authority *Authority
	// Client reads the service CA's Secret (the manager's cache of the
	// operator's namespace) on OpenShift.
	Client client.Reader
	// Namespace is the operator's.
	Namespace string
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// ExporterTLS returns the certificate of the host registering as
// nodeName with addresses (its node IP first), and when to ask again for
// a renewed one (zero: when Secret changes). On OpenShift, before the
// service CA has written its Secret, it returns no certificate and no
// error: the host serves plain HTTP until then.
func (e *Exporter) ExporterTLS(ctx context.Context, nodeName string, addresses []string) (nodeconfig.ExporterTLS, time.Time, error) {
	if e.Authority == nil {
		key := client.ObjectKey{Namespace: e.Namespace, Name: ExporterSecretName}
		s := &corev1.Secret{}
		if err := e.Client.Get(ctx, key, s); apierrors.IsNotFound(err) {
			return nodeconfig.ExporterTLS{}, time.Time{}, nil
		} else if err != nil {
			return nodeconfig.ExporterTLS{}, time.Time{}, fmt.Errorf("get Secret %s: %w", key, err)
		}
		t := nodeconfig.ExporterTLS{CertPEM: s.Data[corev1.TLSCertKey], KeyPEM: s.Data[corev1.TLSPrivateKeyKey]}
		if _, err := tls.X509KeyPair(t.CertPEM, t.KeyPEM); err != nil {
			return nodeconfig.ExporterTLS{}, time.Time{}, fmt.Errorf("secret %s: its certificate and key cannot be parsed or do not belong together", key)
		}
		return t, time.Time{}, nil
	}
	ca, err := e.Authority.CA(ctx)
	if err != nil {
		return nodeconfig.ExporterTLS{}, time.Time{}, err
	}
	req := certs.Request{CommonName: nodeName, DNSNames: []string{nodeName}}
	for _, a := range addresses {
		if ip, err := netip.ParseAddr(a); err == nil {
			req.IPs = append(req.IPs, ip)
		}
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	issued, err := ca.Issue(req, now())
	if err != nil {
		return nodeconfig.ExporterTLS{}, time.Time{}, fmt.Errorf("issue windows_exporter's certificate for %s: %w", nodeName, err)
	}
	return nodeconfig.ExporterTLS{CertPEM: issued.CertPEM, KeyPEM: issued.KeyPEM}, issued.RenewAt, nil
}

// Secret is the Secret whose change changes every host's certificate:
// the CA's, or on OpenShift the service CA's for the node metrics
// Service.
func (e *Exporter) Secret() client.ObjectKey {
	if e.Authority == nil {
		return client.ObjectKey{Namespace: e.Namespace, Name: ExporterSecretName}
	}
	return client.ObjectKey{Namespace: e.Namespace, Name: CASecretName}
}
