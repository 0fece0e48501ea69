package clusterconfig

import (
	"context"
	"errors"
	"fmt"

	configv1 "github.com/openshift/api/config/v1"
	operatorv1 "github.com/openshift/api/operator/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/nodeconfig"
)

// The controller reads the cluster's configuration objects (cluster-scoped
// singletons named cluster, but the mirror sets), the trusted-ca
// ConfigMap of the operator's namespace (which it may create and label;
// no other ConfigMap there), the kubelet client CA ConfigMap and the DNS
// operator's Service.
//
// +kubebuilder:rbac:groups=config.openshift.io,resources=infrastructures;networks;proxies;imagedigestmirrorsets;imagetagmirrorsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=operator.openshift.io,resources=networks,verbs=get;list;watch
// +kubebuilder:rbac:groups=wmco.io,resources=windowsnodeconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups="",namespace=wmco-system,resources=configmaps,verbs=create
// +kubebuilder:rbac:groups="",namespace=wmco-system,resources=configmaps,resourceNames=trusted-ca,verbs=get;list;watch;update
//
// The kubelet client CA and the DNS Service are granted by name in the
// ClusterRole rather than by Roles in OpenShift's namespaces, which plain
// Kubernetes lacks and an OLM bundle cannot hold:
//
// +kubebuilder:rbac:groups="",resources=configmaps,resourceNames=kube-apiserver-to-kubelet-client-ca,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services,resourceNames=dns-default,verbs=get;list;watch
//
// On plain Kubernetes, kube-flannel's ConfigMap (in kube-flannel or
// kube-system) and the API server's ServiceCIDR, by name:
//
// +kubebuilder:rbac:groups="",resources=configmaps,resourceNames=kube-flannel-cfg,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=servicecidrs,resourceNames=kubernetes,verbs=get;list;watch

// The kinds of OpenShift's configuration the controller reads where the
// cluster serves them.
var (
	infrastructureKind  = schema.GroupKind{Group: configv1.GroupName, Kind: "Infrastructure"}
	networkKind         = schema.GroupKind{Group: configv1.GroupName, Kind: "Network"}
	proxyKind           = schema.GroupKind{Group: configv1.GroupName, Kind: "Proxy"}
	idmsKind            = schema.GroupKind{Group: configv1.GroupName, Kind: "ImageDigestMirrorSet"}
	itmsKind            = schema.GroupKind{Group: configv1.GroupName, Kind: "ImageTagMirrorSet"}
	operatorNetworkKind = schema.GroupKind{Group: operatorv1.GroupName, Kind: "Network"}
	openShiftKinds      = []schema.GroupKind{infrastructureKind, networkKind, proxyKind, idmsKind, itmsKind, operatorNetworkKind}
	serviceCIDRKind     = schema.GroupKind{Group: networkingv1.GroupName, Kind: "ServiceCIDR"}
)

// reconciler recomputes the Source's facts; every event is the one
// request.
type reconciler struct {
	source *Source
	// client reads the cluster-scoped objects from the manager's cache and
	// writes the trusted-ca ConfigMap.
	client client.Client
	// objects is the cache of the ConfigMaps and the DNS Service.
	objects cache.Cache
	// served are the OpenShift kinds (on OpenShift) or the ServiceCIDR
	// kind (elsewhere) the cluster served at start-up; the others are
	// read as absent.
	served map[schema.GroupKind]bool
}

// request is the one request of the controller.
var request = reconcile.Request{NamespacedName: client.ObjectKey{Name: cluster.ConfigName}}

// Reconcile reads the objects, makes sure the trusted-ca ConfigMap exists
// on OpenShift, and stores the facts. An error keeps the facts (and
// problem) the Source had.
func (r *reconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	cfg := r.source.config
	var in cluster.ConfigObjects
	wnc := &wmcov1.WindowsNodeConfig{}
	found, err := r.get(ctx, r.client, client.ObjectKey{Name: wmcov1.WindowsNodeConfigName}, wnc)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !found {
		wnc = nil
	}
	in.TrustedCARef = trustedCARef(cfg, wnc)
	if cfg.Platform == cluster.OpenShift {
		if err := r.ensureTrustedCA(ctx); err != nil {
			return ctrl.Result{}, err
		}
		if err := r.readOpenShift(ctx, &in); err != nil {
			return ctrl.Result{}, err
		}
	} else if err := r.readKubernetes(ctx, &in, wnc); err != nil {
		return ctrl.Result{}, err
	}
	if in.TrustedCARef != (cluster.ConfigMapKey{}) {
		in.TrustedCA = &corev1.ConfigMap{}
		found, err := r.get(ctx, r.objects, client.ObjectKey{Namespace: in.TrustedCARef.Namespace, Name: in.TrustedCARef.Name}, in.TrustedCA)
		if err != nil {
			return ctrl.Result{}, err
		}
		if !found {
			in.TrustedCA = nil
		}
	}
	facts, problem := cluster.FactsFrom(cfg.Platform, r.source.base, in)
	r.source.set(ctrl.LoggerFrom(ctx), facts, problem)
	// Every input is watched: no requeue.
	return ctrl.Result{}, nil
}

// readOpenShift fills in the objects of OpenShift's configuration.
func (r *reconciler) readOpenShift(ctx context.Context, in *cluster.ConfigObjects) error {
	infra, network, opNetwork, proxy := &configv1.Infrastructure{}, &configv1.Network{}, &operatorv1.Network{}, &configv1.Proxy{}
	dns, kubeletCA := &corev1.Service{}, &corev1.ConfigMap{}
	singleton := client.ObjectKey{Name: cluster.ConfigName}
	for _, rd := range []struct {
		reader client.Reader
		key    client.ObjectKey
		obj    client.Object
		set    func()
	}{
		{r.client, singleton, infra, func() { in.Infrastructure = infra }},
		{r.client, singleton, network, func() { in.Network = network }},
		{r.client, singleton, opNetwork, func() { in.OperatorNetwork = opNetwork }},
		{r.client, singleton, proxy, func() { in.Proxy = proxy }},
		{r.objects, client.ObjectKey{Namespace: cluster.DNSNamespace, Name: cluster.DNSServiceName}, dns, func() { in.DNSService = dns }},
		{r.objects, client.ObjectKey{Namespace: cluster.KubeletClientCANamespace, Name: cluster.KubeletClientCAName}, kubeletCA, func() { in.KubeletClientCA = kubeletCA }},
	} {
		found, err := r.get(ctx, rd.reader, rd.key, rd.obj)
		if err != nil {
			return err
		}
		if found {
			rd.set()
		}
	}
	if r.served[idmsKind] {
		var l configv1.ImageDigestMirrorSetList
		if err := r.client.List(ctx, &l); err != nil {
			return fmt.Errorf("list ImageDigestMirrorSets: %w", err)
		}
		in.DigestMirrorSets = l.Items
	}
	if r.served[itmsKind] {
		var l configv1.ImageTagMirrorSetList
		if err := r.client.List(ctx, &l); err != nil {
			return fmt.Errorf("list ImageTagMirrorSets: %w", err)
		}
		in.TagMirrorSets = l.Items
	}
	return nil
}

// readKubernetes fills in what plain Kubernetes tells about its network:
// kube-flannel's ConfigMap, the first found of cluster.FlannelNamespaces;
// the ServiceCIDR; and the WindowsNodeConfig's network type.
func (r *reconciler) readKubernetes(ctx context.Context, in *cluster.ConfigObjects, wnc *wmcov1.WindowsNodeConfig) error {
	in.NetworkType = nodeconfig.DefaultNetworkType
	if wnc != nil && wnc.Spec.Network.Type != "" {
		in.NetworkType = wnc.Spec.Network.Type
	}
	for _, ns := range cluster.FlannelNamespaces {
		cm := &corev1.ConfigMap{}
		found, err := r.get(ctx, r.objects, client.ObjectKey{Namespace: ns, Name: cluster.FlannelConfigMapName}, cm)
		if err != nil {
			return err
		}
		if found {
			in.FlannelConfig = cm
			break
		}
	}
	sc := &networkingv1.ServiceCIDR{}
	found, err := r.get(ctx, r.objects, client.ObjectKey{Name: cluster.ServiceCIDRName}, sc)
	if err != nil {
		return err
	}
	if found {
		in.ServiceCIDR = sc
	}
	return nil
}

// get reads key into obj and reports whether it exists; an object of an
// OpenShift kind or a ServiceCIDR the cluster does not serve does not.
func (r *reconciler) get(ctx context.Context, c client.Reader, key client.ObjectKey, obj client.Object) (bool, error) {
	if gk, ok := openShiftKind(obj); ok && !r.served[gk] {
		return false, nil
	}
	err := c.Get(ctx, key, obj)
	switch {
	case apierrors.IsNotFound(err) || meta.IsNoMatchError(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read %T %s: %w", obj, key, err)
	}
	return true, nil
}

// openShiftKind is the kind of obj when it is one of openShiftKinds or
// the ServiceCIDR kind: kinds a cluster may not serve.
func openShiftKind(obj client.Object) (schema.GroupKind, bool) {
	switch obj.(type) {
	case *configv1.Infrastructure:
		return infrastructureKind, true
	case *configv1.Network:
		return networkKind, true
	case *configv1.Proxy:
		return proxyKind, true
	case *operatorv1.Network:
		return operatorNetworkKind, true
	case *networkingv1.ServiceCIDR:
		return serviceCIDRKind, true
	}
	return schema.GroupKind{}, false
}

// trustedCARef names the trusted CA bundle: on OpenShift the operator's
// trusted-ca ConfigMap, into which the Cluster Network Operator injects
// the cluster's bundle; on plain Kubernetes the same ConfigMap, filled by
// the admin, when WindowsNodeConfig spec.trustedCA asks for it (with its
// key). The cache and the RBAC hold only that ConfigMap of the namespace.
func trustedCARef(cfg core.Config, wnc *wmcov1.WindowsNodeConfig) cluster.ConfigMapKey {
	if cfg.Platform == cluster.OpenShift {
		return cluster.ConfigMapKey{Namespace: cfg.Namespace, Name: cluster.TrustedCAName, Key: cluster.CABundleKey}
	}
	if wnc != nil && wnc.Spec.TrustedCA != nil {
		key := wnc.Spec.TrustedCA.Key
		if key == "" {
			key = cluster.CABundleKey
		}
		return cluster.ConfigMapKey{Namespace: cfg.Namespace, Name: cluster.TrustedCAName, Key: key}
	}
	return cluster.ConfigMapKey{}
}

// ensureTrustedCA creates the trusted-ca ConfigMap, labelled for the
// Cluster Network Operator to inject the trusted CA bundle, or adds the
// label to one without it. It never writes the ConfigMap's data.
func (r *reconciler) ensureTrustedCA(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx)
	ns := r.source.config.Namespace
	cm := &corev1.ConfigMap{}
	err := r.objects.Get(ctx, client.ObjectKey{Namespace: ns, Name: cluster.TrustedCAName}, cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: cluster.TrustedCAName, Labels: map[string]string{cluster.TrustedCAInjectLabel: "true"},
		}}
		log.Info("Creating the trusted CA ConfigMap for the network operator to inject the cluster's CA bundle into", "configMap", klog.KObj(cm))
		if err := r.client.Create(ctx, cm); err != nil {
			// AlreadyExists: the cache lags; the error retries.
			return fmt.Errorf("create ConfigMap %s: %w", klog.KObj(cm), err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("read ConfigMap %s/%s: %w", ns, cluster.TrustedCAName, err)
	case cm.Labels[cluster.TrustedCAInjectLabel] == "true":
		return nil
	}
	cm = cm.DeepCopy()
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	cm.Labels[cluster.TrustedCAInjectLabel] = "true"
	log.Info("Labelling the trusted CA ConfigMap for the network operator to inject the cluster's CA bundle", "configMap", klog.KObj(cm))
	if err := r.client.Update(ctx, cm); err != nil {
		return fmt.Errorf("label ConfigMap %s: %w", klog.KObj(cm), err)
	}
	return nil
}

// SetupWithManager adds the controller that keeps s current. It watches,
// from the manager's cache, the WindowsNodeConfig and (on OpenShift) the
// kinds of openShiftKinds that the cluster serves now (a kind installed
// later is not watched until the operator restarts); and, from a cache of
// its own, the trusted-ca ConfigMap of the operator's namespace and, by
// name, on OpenShift the kubelet client CA ConfigMap and the DNS Service,
// elsewhere kube-flannel's ConfigMap and the ServiceCIDR (where served).
func (s *Source) SetupWithManager(mgr ctrl.Manager) error {
	if s.config.Namespace == "" {
		return errors.New("cluster configuration controller: Config.Namespace is empty")
	}
	r := &reconciler{source: s, client: mgr.GetClient(), served: map[schema.GroupKind]bool{}}
	if s.config.Platform == cluster.OpenShift {
		for _, gk := range openShiftKinds {
			_, err := mgr.GetRESTMapper().RESTMapping(gk)
			switch {
			case err == nil:
				r.served[gk] = true
			case meta.IsNoMatchError(err):
				mgr.GetLogger().Info("The cluster does not serve a kind of OpenShift's configuration; it is read as absent", "kind", gk.String())
			default:
				return fmt.Errorf("cluster configuration controller: discover %s: %w", gk, err)
			}
		}
	} else {
		_, err := mgr.GetRESTMapper().RESTMapping(serviceCIDRKind, networkingv1.SchemeGroupVersion.Version)
		switch {
		case err == nil:
			r.served[serviceCIDRKind] = true
		case meta.IsNoMatchError(err):
			mgr.GetLogger().Info("The cluster does not serve ServiceCIDRs; the service CIDR is --service-cidr, else " + cluster.DefaultServiceCIDR)
		default:
			return fmt.Errorf("cluster configuration controller: discover %s: %w", serviceCIDRKind, err)
		}
	}
	c, err := core.AddCache(mgr, "the cluster configuration", cache.Options{
		ByObject: CacheByObject(s.config.Namespace, s.config.Platform, r.served[serviceCIDRKind]),
		// Nothing here needs them; they are most of a small object.
		DefaultTransform: cache.TransformStripManagedFields(),
	})
	if err != nil {
		return err
	}
	r.objects = c

	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{request}
	})
	named := func(name string) builder.Predicates {
		return builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == name }))
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("clusterconfig").
		// Once at start: on plain Kubernetes there may be no object at
		// all, and the Source must leave ProblemReading anyway.
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			q.Add(request)
			return nil
		})).
		Watches(&wmcov1.WindowsNodeConfig{}, all, named(wmcov1.WindowsNodeConfigName)).
		WatchesRawSource(source.Kind(c, &corev1.ConfigMap{}, handler.TypedEnqueueRequestsFromMapFunc(
			func(context.Context, *corev1.ConfigMap) []reconcile.Request { return []reconcile.Request{request} })))
	if r.served[serviceCIDRKind] {
		b = b.WatchesRawSource(source.Kind(c, &networkingv1.ServiceCIDR{}, handler.TypedEnqueueRequestsFromMapFunc(
			func(context.Context, *networkingv1.ServiceCIDR) []reconcile.Request {
				return []reconcile.Request{request}
			})))
	}
	if s.config.Platform == cluster.OpenShift {
		b = b.WatchesRawSource(source.Kind(c, &corev1.Service{}, handler.TypedEnqueueRequestsFromMapFunc(
			func(context.Context, *corev1.Service) []reconcile.Request { return []reconcile.Request{request} })))
		for _, w := range []struct {
			kind schema.GroupKind
			obj  client.Object
		}{
			{infrastructureKind, &configv1.Infrastructure{}}, {networkKind, &configv1.Network{}},
			{proxyKind, &configv1.Proxy{}}, {operatorNetworkKind, &operatorv1.Network{}},
		} {
			if r.served[w.kind] {
				b = b.Watches(w.obj, all, named(cluster.ConfigName))
			}
		}
		if r.served[idmsKind] {
			b = b.Watches(&configv1.ImageDigestMirrorSet{}, all)
		}
		if r.served[itmsKind] {
			b = b.Watches(&configv1.ImageTagMirrorSet{}, all)
		}
	}
	return b.Complete(r)
}

// CacheByObject is what the controller's own cache holds: the trusted-ca
// ConfigMap of the operator's namespace and, on OpenShift, the kubelet
// client CA ConfigMap and the DNS operator's Service; elsewhere
// kube-flannel's ConfigMap in each of cluster.FlannelNamespaces and, when
// serviceCIDRs (the cluster serves the kind), the ServiceCIDR; each by
// name (the operator may read nothing else there). An operator running in
// one of those namespaces does not see kube-flannel's ConfigMap there: a
// namespace's cache holds one name.
func CacheByObject(namespace string, platform cluster.Platform, serviceCIDRs bool) map[client.Object]cache.ByObject {
	configMaps := map[string]cache.Config{namespace: {FieldSelector: fields.OneTermEqualSelector("metadata.name", cluster.TrustedCAName)}}
	out := map[client.Object]cache.ByObject{&corev1.ConfigMap{}: {Namespaces: configMaps}}
	if platform != cluster.OpenShift {
		for _, ns := range cluster.FlannelNamespaces {
			if ns != namespace {
				configMaps[ns] = cache.Config{FieldSelector: fields.OneTermEqualSelector("metadata.name", cluster.FlannelConfigMapName)}
			}
		}
		if serviceCIDRs {
			out[&networkingv1.ServiceCIDR{}] = cache.ByObject{Field: fields.OneTermEqualSelector("metadata.name", cluster.ServiceCIDRName)}
		}
		return out
	}
	configMaps[cluster.KubeletClientCANamespace] = cache.Config{FieldSelector: fields.OneTermEqualSelector("metadata.name", cluster.KubeletClientCAName)}
	out[&corev1.Service{}] = cache.ByObject{Namespaces: map[string]cache.Config{
		cluster.DNSNamespace: {FieldSelector: fields.OneTermEqualSelector("metadata.name", cluster.DNSServiceName)},
	}}
	return out
}
