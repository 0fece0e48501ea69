package servingcert

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	"sigs.k8s.io/yaml"

	"github.com/openwmco/wmco/config/prometheus"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/controllers/nodemetrics"
	certs "github.com/openwmco/wmco/pkg/servingcert"
)

// +kubebuilder:rbac:groups="",namespace=wmco-system,resources=configmaps,verbs=create
// +kubebuilder:rbac:groups="",namespace=wmco-system,resources=configmaps,resourceNames=wmco-serving-ca,verbs=get;list;watch;update
// +kubebuilder:rbac:groups="",namespace=wmco-system,resources=secrets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups="",namespace=wmco-system,resources=serviceaccounts,verbs=create
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterrolebindings,verbs=create
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterrolebindings,resourceNames=wmco:metrics-scraper,verbs=get;update;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,resourceNames=wmco-metrics-reader,verbs=bind
// +kubebuilder:rbac:groups=monitoring.coreos.com,namespace=wmco-system,resources=servicemonitors,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,resourceNames=servicemonitors.monitoring.coreos.com,verbs=get;list;watch
// +kubebuilder:rbac:groups=monitoring.coreos.com,namespace=wmco-system,resources=prometheusrules,verbs=get;create;update
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,resourceNames=prometheusrules.monitoring.coreos.com,verbs=get;list;watch

// Names of the scraper identity and the ServiceMonitors.
const (
	// ScraperServiceAccount is the identity Prometheus presents to the
	// operator's metrics endpoint: bound to the ClusterRole
	// MetricsReaderRole by ScraperBinding, its token in ScraperTokenSecret.
	ScraperServiceAccount = "wmco-metrics-scraper"
	ScraperTokenSecret    = "wmco-metrics-scraper-token"
	ScraperBinding        = "wmco:metrics-scraper"
	// MetricsReaderRole may get /metrics (config/rbac).
	MetricsReaderRole = "wmco-metrics-reader"
	// OperatorMonitor and NodesMonitor are the ServiceMonitors of the
	// operator and of the Windows nodes' windows_exporter.
	OperatorMonitor = "wmco"
	NodesMonitor    = "windows-exporter"
	// ServiceMonitorCRD is the Prometheus Operator's CRD whose presence
	// makes the operator keep its ServiceMonitors.
	ServiceMonitorCRD = "servicemonitors.monitoring.coreos.com"
	// PrometheusRuleCRD is the Prometheus Operator's CRD whose presence
	// makes the operator keep its alerting and recording rules, the
	// PrometheusRule RulesName (config/prometheus/rules.yaml).
	PrometheusRuleCRD = "prometheusrules.monitoring.coreos.com"
	RulesName         = "wmco"
	// OperatorServiceLabel selects the wmco-metrics Service
	// (app.kubernetes.io/name=wmco, config/manager).
	OperatorServiceLabel = "wmco"
)

// Reconciler keeps, in the operator's namespace, the ConfigMap of the
// CA that signs the serving certificates, the metrics endpoint's
// certificate, Prometheus' identity for the metrics
// endpoint, and, where the Prometheus Operator's CRDs exist, the two
// ServiceMonitors and the PrometheusRule of the alerts.
type Reconciler struct {
	// Client writes; it reads Secrets of the operator's namespace from
	// the manager's cache.
	Client client.Client
	// APIReader reads what the operator may only get by name.
	APIReader client.Reader
	// Namespace is the operator's.
	Namespace string
	// Authority is the operator's CA on plain Kubernetes; nil on
	// OpenShift, where the service CA signs.
	Authority *Authority
	// Metrics, when set, serves the metrics endpoint's certificate: every
	// replica loads it from MetricsSecretName, leader or not.
	Metrics *MetricsCertificate
	// Now is the clock; default time.Now.
	Now func() time.Time

	// objects reads the ConfigMap and the ServiceMonitor CRD from a cache
	// of their own; ruleCRD the PrometheusRule CRD.
	objects, ruleCRD client.Reader
}

// Reconcile brings every object in line; it comes back when the
// metrics certificate is due for renewal.
func (r *Reconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	var errs []error
	if err := r.ensureCAConfigMap(ctx); err != nil {
		errs = append(errs, err)
	}
	renewAt, err := r.ensureMetricsCertificate(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	if err := r.ensureScraper(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := r.ensureMonitoring(ctx, r.objects, ServiceMonitorCRD, ServiceMonitors(r.Namespace, r.Authority == nil)); err != nil {
		errs = append(errs, err)
	}
	rules, err := PrometheusRule(r.Namespace)
	if err == nil {
		err = r.ensureMonitoring(ctx, r.ruleCRD, PrometheusRuleCRD, []*unstructured.Unstructured{rules})
	}
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return ctrl.Result{}, kerrors.NewAggregate(errs)
	}
	if !renewAt.IsZero() {
		return ctrl.Result{RequeueAfter: max(renewAt.Sub(r.now()), time.Second)}, nil
	}
	return ctrl.Result{}, nil
}

func (r *Reconciler) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

// ensureCAConfigMap publishes the CA: the operator's own certificate, or
// on OpenShift the annotation that makes the service CA inject its
// bundle (whose data the operator never writes).
func (r *Reconciler) ensureCAConfigMap(ctx context.Context) error {
	want := map[string]string{}
	var annotations map[string]string
	if r.Authority != nil {
		ca, err := r.Authority.CA(ctx)
		if err != nil {
			return err
		}
		want[CAConfigMapKey] = string(ca.CertPEM)
	} else {
		annotations = map[string]string{InjectCABundleAnnotation: "true"}
	}
	cm := &corev1.ConfigMap{}
	err := r.objects.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: CAConfigMapName}, cm)
	if apierrors.IsNotFound(err) {
		cm = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Name: CAConfigMapName, Namespace: r.Namespace, Annotations: annotations,
				Labels: map[string]string{nodemetrics.LabelManagedBy: nodemetrics.ManagedByValue},
			},
		}
		if r.Authority != nil {
			cm.Data = want
		}
		ctrl.LoggerFrom(ctx).Info("Creating the serving CA ConfigMap", "configMap", klog.KObj(cm))
		if err := r.Client.Create(ctx, cm); err != nil {
			// AlreadyExists: the cache lags; the error retries.
			return fmt.Errorf("create ConfigMap %s: %w", klog.KObj(cm), err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get ConfigMap %s/%s: %w", r.Namespace, CAConfigMapName, err)
	}
	upd := cm.DeepCopy()
	if r.Authority != nil {
		upd.Data = want
	}
	if len(annotations) > 0 {
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		maps.Copy(upd.Annotations, annotations)
	}
	if equality.Semantic.DeepEqual(upd, cm) {
		return nil
	}
	ctrl.LoggerFrom(ctx).Info("Updating the serving CA ConfigMap", "configMap", klog.KObj(cm))
	if err := r.Client.Update(ctx, upd); err != nil {
		return fmt.Errorf("update ConfigMap %s: %w", klog.KObj(cm), err)
	}
	return nil
}

// ensureMetricsCertificate keeps MetricsSecretName on plain Kubernetes
// (the service CA writes it on OpenShift). It returns when the
// certificate is due for renewal (zero on OpenShift).
func (r *Reconciler) ensureMetricsCertificate(ctx context.Context) (time.Time, error) {
	if r.Authority == nil {
		return time.Time{}, nil
	}
	ca, err := r.Authority.CA(ctx)
	if err != nil {
		return time.Time{}, err
	}
	issued, err := ca.Issue(certs.Request{
		CommonName: certs.ServerName(MetricsServiceName, r.Namespace),
		DNSNames:   certs.ServiceDNSNames(MetricsServiceName, r.Namespace, ""),
	}, r.now())
	if err != nil {
		return time.Time{}, fmt.Errorf("issue the metrics endpoint's certificate: %w", err)
	}
	data := map[string][]byte{corev1.TLSCertKey: issued.CertPEM, corev1.TLSPrivateKeyKey: issued.KeyPEM}
	key := client.ObjectKey{Namespace: r.Namespace, Name: MetricsSecretName}
	s := &corev1.Secret{}
	err = r.Client.Get(ctx, key, s)
	switch {
	case apierrors.IsNotFound(err):
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: MetricsSecretName, Namespace: r.Namespace,
				Labels: map[string]string{nodemetrics.LabelManagedBy: nodemetrics.ManagedByValue},
			},
			Type: corev1.SecretTypeTLS, Data: data,
		}
		ctrl.LoggerFrom(ctx).Info("Creating the metrics endpoint's certificate", "secret", klog.KObj(s))
		if err := r.Client.Create(ctx, s); err != nil {
			// AlreadyExists: the cache lags; the error retries.
			return time.Time{}, fmt.Errorf("create Secret %s: %w", key, err)
		}
	case err != nil:
		return time.Time{}, fmt.Errorf("get Secret %s: %w", key, err)
	case !bytes.Equal(s.Data[corev1.TLSCertKey], issued.CertPEM) || !bytes.Equal(s.Data[corev1.TLSPrivateKeyKey], issued.KeyPEM):
		ctrl.LoggerFrom(ctx).Info("Renewing the metrics endpoint's certificate", "secret", klog.KObj(s))
		upd := s.DeepCopy()
		upd.Data = data
		if err := r.Client.Update(ctx, upd); err != nil {
			return time.Time{}, fmt.Errorf("update Secret %s: %w", key, err)
		}
	}
	return issued.RenewAt, nil
}

// ensureScraper keeps Prometheus' identity for the metrics endpoint: a
// ServiceAccount, its token Secret (filled by kube-controller-manager)
// and its binding to MetricsReaderRole.
func (r *Reconciler) ensureScraper(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
		Name: ScraperServiceAccount, Namespace: r.Namespace,
		Labels: map[string]string{nodemetrics.LabelManagedBy: nodemetrics.ManagedByValue},
	}}
	// The operator may create ServiceAccounts but not get them.
	if err := r.Client.Create(ctx, sa); err == nil {
		log.Info("Created the metrics scraper's ServiceAccount", "serviceAccount", klog.KObj(sa))
	} else if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ServiceAccount %s: %w", klog.KObj(sa), err)
	}
	tok := &corev1.Secret{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: ScraperTokenSecret}, tok)
	if apierrors.IsNotFound(err) {
		tok = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: ScraperTokenSecret, Namespace: r.Namespace,
				Labels:      map[string]string{nodemetrics.LabelManagedBy: nodemetrics.ManagedByValue},
				Annotations: map[string]string{corev1.ServiceAccountNameKey: ScraperServiceAccount},
			},
			Type: corev1.SecretTypeServiceAccountToken,
		}
		log.Info("Creating the metrics scraper's token Secret", "secret", klog.KObj(tok))
		if err := r.Client.Create(ctx, tok); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create Secret %s: %w", klog.KObj(tok), err)
		}
	} else if err != nil {
		return fmt.Errorf("get Secret %s/%s: %w", r.Namespace, ScraperTokenSecret, err)
	}

	want := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{
			Name:   ScraperBinding,
			Labels: map[string]string{nodemetrics.LabelManagedBy: nodemetrics.ManagedByValue},
		},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: MetricsReaderRole},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: ScraperServiceAccount, Namespace: r.Namespace}},
	}
	crb := &rbacv1.ClusterRoleBinding{}
	err = r.APIReader.Get(ctx, client.ObjectKey{Name: ScraperBinding}, crb)
	switch {
	case apierrors.IsNotFound(err):
		log.Info("Creating the metrics scraper's ClusterRoleBinding", "clusterRoleBinding", ScraperBinding)
		if err := r.Client.Create(ctx, want); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ClusterRoleBinding %s: %w", ScraperBinding, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("get ClusterRoleBinding %s: %w", ScraperBinding, err)
	case crb.RoleRef != want.RoleRef:
		// roleRef cannot change: replace it; the next reconcile creates it.
		if err := r.Client.Delete(ctx, crb, client.Preconditions{UID: &crb.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("replace ClusterRoleBinding %s: %w", ScraperBinding, err)
		}
		return errors.New("replaced ClusterRoleBinding " + ScraperBinding + " of another role")
	case !equality.Semantic.DeepEqual(crb.Subjects, want.Subjects):
		upd := crb.DeepCopy()
		upd.Subjects = want.Subjects
		if err := r.Client.Update(ctx, upd); err != nil {
			return fmt.Errorf("update ClusterRoleBinding %s: %w", ScraperBinding, err)
		}
	}
	return nil
}

// crdExists says whether the CRD name exists, read from crds.
func crdExists(ctx context.Context, crds client.Reader, name string) (bool, error) {
	err := crds.Get(ctx, client.ObjectKey{Name: name}, crdMetadata())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get CustomResourceDefinition %s: %w", name, err)
	}
	return true, nil
}

// ensureMonitoring creates or corrects the Prometheus Operator objects
// wants (their spec, and their labels added to any others) where their
// CRD crd exists (read from crds); without it there is nothing to do
// until it appears (a watch).
func (r *Reconciler) ensureMonitoring(ctx context.Context, crds client.Reader, crd string, wants []*unstructured.Unstructured) error {
	ok, err := crdExists(ctx, crds, crd)
	if err != nil || !ok {
		return err
	}
	var errs []error
	for _, want := range wants {
		kind := want.GetKind()
		have := &unstructured.Unstructured{}
		have.SetGroupVersionKind(want.GroupVersionKind())
		err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(want), have)
		switch {
		case apierrors.IsNotFound(err):
			ctrl.LoggerFrom(ctx).Info("Creating "+kind, "name", klog.KObj(want))
			if err := r.Client.Create(ctx, want); err != nil {
				errs = append(errs, fmt.Errorf("create %s %s: %w", kind, klog.KObj(want), err))
			}
		case err != nil:
			errs = append(errs, fmt.Errorf("get %s %s: %w", kind, klog.KObj(want), err))
		case !equality.Semantic.DeepEqual(have.Object["spec"], want.Object["spec"]) || !labels.SelectorFromSet(want.GetLabels()).Matches(labels.Set(have.GetLabels())):
			ctrl.LoggerFrom(ctx).Info("Updating "+kind, "name", klog.KObj(want))
			upd := have.DeepCopy()
			upd.Object["spec"] = want.Object["spec"]
			l := upd.GetLabels()
			if l == nil {
				l = map[string]string{}
			}
			maps.Copy(l, want.GetLabels())
			upd.SetLabels(l)
			if err := r.Client.Update(ctx, upd); err != nil {
				errs = append(errs, fmt.Errorf("update %s %s: %w", kind, klog.KObj(want), err))
			}
		}
	}
	return kerrors.NewAggregate(errs)
}

// PrometheusRule is the PrometheusRule RulesName of
// config/prometheus/rules.yaml in namespace, labelled as the operator's.
func PrometheusRule(namespace string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(prometheus.Rules, &u.Object); err != nil {
		return nil, fmt.Errorf("config/prometheus/rules.yaml: %w", err)
	}
	if u.GetKind() != "PrometheusRule" || u.GetName() != RulesName {
		return nil, fmt.Errorf("config/prometheus/rules.yaml: a %s named %q, not the PrometheusRule %s", u.GetKind(), u.GetName(), RulesName)
	}
	u.SetNamespace(namespace)
	l := u.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	l[nodemetrics.LabelManagedBy] = nodemetrics.ManagedByValue
	u.SetLabels(l)
	return u, nil
}

// ServiceMonitors are the Prometheus Operator ServiceMonitors of the
// operator's metrics endpoint (bearer token of ScraperServiceAccount) and
// of the Windows nodes' windows_exporter (through the EndpointSlices the
// node metrics controller writes; a `node` label from the endpoint's node
// name), both over TLS verified with the ConfigMap CAConfigMapName. The
// nodes' certificates name each host's addresses on plain Kubernetes;
// on OpenShift (serviceCA) they are the Service's, verified by name.
func ServiceMonitors(namespace string, serviceCA bool) []*unstructured.Unstructured {
	ca := map[string]any{"configMap": map[string]any{"name": CAConfigMapName, "key": CAConfigMapKey}}
	nodesTLS := map[string]any{"ca": ca}
	if serviceCA {
		nodesTLS["serverName"] = certs.ServerName(nodemetrics.ServiceName, namespace)
	}
	monitor := func(name, selected string, endpoint map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "monitoring.coreos.com/v1",
			"kind":       "ServiceMonitor",
			"metadata": map[string]any{
				"name": name, "namespace": namespace,
				"labels": map[string]any{
					nodemetrics.LabelName: name, nodemetrics.LabelManagedBy: nodemetrics.ManagedByValue,
				},
			},
			"spec": map[string]any{
				"selector": map[string]any{"matchLabels": map[string]any{nodemetrics.LabelName: selected}},
				// The node metrics Service has EndpointSlices only.
				"serviceDiscoveryRole": "EndpointSlice",
				"endpoints":            []any{endpoint},
			},
		}}
	}
	return []*unstructured.Unstructured{
		monitor(OperatorMonitor, OperatorServiceLabel, map[string]any{
			"port": "metrics", "scheme": "https", "path": "/metrics",
			"authorization": map[string]any{
				"type":        "Bearer",
				"credentials": map[string]any{"name": ScraperTokenSecret, "key": corev1.ServiceAccountTokenKey},
			},
			"tlsConfig": map[string]any{"ca": ca, "serverName": certs.ServerName(MetricsServiceName, namespace)},
		}),
		monitor(NodesMonitor, nodemetrics.ServiceName, map[string]any{
			"port": nodemetrics.PortName, "scheme": "https", "path": "/metrics",
			"tlsConfig": nodesTLS,
			"relabelings": []any{map[string]any{
				"action":       "replace",
				"sourceLabels": []any{"__meta_kubernetes_endpointslice_endpoint_node_name"},
				"targetLabel":  "node",
			}},
		}),
	}
}

// MetricsCertificate serves the metrics endpoint's certificate, replaced
// when its Secret changes. Until the first is set, TLS handshakes fail.
type MetricsCertificate struct {
	mu   sync.RWMutex
	cert *tls.Certificate
}

// Set replaces the certificate; the error never quotes the key.
func (m *MetricsCertificate) Set(certPEM, keyPEM []byte) error {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return errors.New("the certificate and key cannot be parsed or do not belong together")
	}
	m.mu.Lock()
	m.cert = &c
	m.mu.Unlock()
	return nil
}

// GetCertificate is tls.Config's GetCertificate.
func (m *MetricsCertificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.cert == nil {
		return nil, errors.New("the metrics endpoint's certificate is not loaded yet")
	}
	return m.cert, nil
}

// TLSOpt makes a tls.Config serve the certificate (a metrics server
// option).
func (m *MetricsCertificate) TLSOpt(c *tls.Config) {
	c.Certificates = nil
	c.GetCertificate = m.GetCertificate
}

// apiextensionsCRD is the kind of CustomResourceDefinitions.
var apiextensionsCRD = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

func crdMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(apiextensionsCRD)
	return m
}

// SetupWithManager registers the controller: the Secrets it keeps or
// reads (manager's cache), the ConfigMap and the ServiceMonitor CRD
// (caches of their own, by name), and once at start.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	switch {
	case r.Client == nil || r.APIReader == nil:
		return errors.New("serving certificate controller: Client and APIReader are required")
	case r.Namespace == "":
		return errors.New("serving certificate controller: Namespace is empty")
	}
	rc, err := core.AddCache(mgr, "the PrometheusRule CRD", cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			crdMetadata(): {Field: fields.OneTermEqualSelector("metadata.name", PrometheusRuleCRD)},
		},
	})
	if err != nil {
		return err
	}
	r.ruleCRD = rc
	c, err := core.AddCache(mgr, "the serving CA ConfigMap and the ServiceMonitor CRD", cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {
				Namespaces: map[string]cache.Config{r.Namespace: {}},
				Field:      fields.OneTermEqualSelector("metadata.name", CAConfigMapName),
			},
			crdMetadata(): {Field: fields.OneTermEqualSelector("metadata.name", ServiceMonitorCRD)},
		},
	})
	if err != nil {
		return err
	}
	r.objects = c
	if r.Metrics != nil {
		if err := (&metricsLoader{client: mgr.GetClient(), key: client.ObjectKey{Namespace: r.Namespace, Name: MetricsSecretName}, metrics: r.Metrics}).
			setupWithManager(mgr); err != nil {
			return err
		}
	}
	request := reconcile.Request{NamespacedName: client.ObjectKey{Namespace: r.Namespace, Name: CAConfigMapName}}
	one := func(context.Context, client.Object) []reconcile.Request { return []reconcile.Request{request} }
	names := []string{CASecretName, MetricsSecretName, ScraperTokenSecret}
	// Either CRD appearing (or going) brings the one request.
	crdEvent := handler.TypedEnqueueRequestsFromMapFunc(
		func(context.Context, *metav1.PartialObjectMetadata) []reconcile.Request {
			return []reconcile.Request{request}
		})
	return ctrl.NewControllerManagedBy(mgr).
		Named("servingcert").
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			q.Add(request)
			return nil
		})).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(one), builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetNamespace() == r.Namespace && slices.Contains(names, o.GetName())
		}))).
		WatchesRawSource(source.Kind(c, &corev1.ConfigMap{}, handler.TypedEnqueueRequestsFromMapFunc(
			func(context.Context, *corev1.ConfigMap) []reconcile.Request { return []reconcile.Request{request} }))).
		WatchesRawSource(source.Kind(c, crdMetadata(), crdEvent)).
		WatchesRawSource(source.Kind(rc, crdMetadata(), crdEvent)).
		Complete(r)
}

// metricsLoader loads MetricsSecretName into a MetricsCertificate, in
// every replica (the metrics endpoint serves whether or not its replica
// leads).
type metricsLoader struct {
	client  client.Reader
	key     client.ObjectKey
	metrics *MetricsCertificate
}

func (l *metricsLoader) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	s := &corev1.Secret{}
	if err := l.client.Get(ctx, l.key, s); apierrors.IsNotFound(err) {
		// Its creation is an event.
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, fmt.Errorf("get Secret %s: %w", l.key, err)
	}
	if err := l.metrics.Set(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]); err != nil {
		return ctrl.Result{}, fmt.Errorf("secret %s: %w", l.key, err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Loaded the metrics endpoint's certificate", "secret", l.key)
	return ctrl.Result{}, nil
}

func (l *metricsLoader) setupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("metricscert").
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Watches(&corev1.Secret{}, &handler.EnqueueRequestForObject{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return client.ObjectKeyFromObject(o) == l.key
		}))).
		Complete(l)
}
