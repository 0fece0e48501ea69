// Package nodemetrics makes the Windows Nodes' windows_exporter reachable
// for Prometheus: a headless Service without a selector in the operator's
// namespace (windows-exporter, port 9182 named metrics) and EndpointSlices
// listing, for every Node the operator made (labelled wmco.io/instance),
// its InternalIP, its name and whether it is Ready. NotReady Nodes stay
// listed with ready=false, as EndpointSlices say it, so a scrape target
// does not vanish while its host is down. It never touches a host.
package nodemetrics

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
)

// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",namespace=wmco-system,resources=services,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=discovery.k8s.io,namespace=wmco-system,resources=endpointslices,verbs=get;list;watch;create;update;delete

// Reconciler keeps the Service and its EndpointSlices.
type Reconciler struct {
	// Client reads Nodes (the manager's cache holds the operator's) and
	// writes the Service and EndpointSlices.
	Client client.Client
	// Namespace is the operator's, where the Service is.
	Namespace string
	// ServingCertSecret, on OpenShift, is the Secret the service CA is
	// asked to write the Service's serving certificate into (the
	// ServingCertAnnotation); empty elsewhere.
	ServingCertSecret string

	// objects reads the Service and the operator's EndpointSlices from a
	// cache restricted to Namespace (the operator may not list Services
	// or EndpointSlices elsewhere).
	objects client.Reader
}

// Reconcile brings the Service and the EndpointSlices in line with the
// Nodes.
func (r *Reconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	svc, err := r.ensureService(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	if svc == nil {
		// Deleted for a replacement; its deletion is an event.
		return ctrl.Result{}, nil
	}
	var nodes corev1.NodeList
	if err := r.Client.List(ctx, &nodes, client.HasLabels{wmcov1.LabelInstance}); err != nil {
		return ctrl.Result{}, fmt.Errorf("list Windows Nodes: %w", err)
	}
	// Every slice this controller manages, whatever its service-name
	// label says: one whose label was edited is corrected, not made again.
	var existing discoveryv1.EndpointSliceList
	if err := r.objects.List(ctx, &existing, client.InNamespace(r.Namespace), client.MatchingLabels{
		discoveryv1.LabelManagedBy: ManagedBy,
	}); err != nil {
		return ctrl.Result{}, fmt.Errorf("list EndpointSlices: %w", err)
	}
	have := map[string]*discoveryv1.EndpointSlice{}
	for i := range existing.Items {
		have[existing.Items[i].Name] = &existing.Items[i]
	}
	want := DesiredSlices(svc, nodes.Items)
	var errs []error
	for i := range want {
		if err := r.applySlice(ctx, &want[i], have[want[i].Name]); err != nil {
			errs = append(errs, err)
		}
		delete(have, want[i].Name)
	}
	for _, name := range slices.Sorted(maps.Keys(have)) {
		es := have[name]
		ctrl.LoggerFrom(ctx).Info("Deleting EndpointSlice", "endpointSlice", klog.KObj(es))
		if err := r.Client.Delete(ctx, es, client.Preconditions{UID: &es.UID}); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("delete EndpointSlice %s: %w", name, err))
		}
	}
	// A conflict is the cache behind this controller's own last update
	// (Nodes turning Ready one after another): retried quietly.
	return core.QuietCacheLag(ctx, ctrl.Result{}, kerrors.NewAggregate(errs))
}

// ensureService creates or corrects the Service and returns it; nil when
// it was deleted to be made again (a cluster IP cannot be taken away).
func (r *Reconciler) ensureService(ctx context.Context) (*corev1.Service, error) {
	log := ctrl.LoggerFrom(ctx)
	want := ServiceFor(r.Namespace)
	if r.ServingCertSecret != "" {
		want.Annotations = map[string]string{ServingCertAnnotation: r.ServingCertSecret}
	}
	svc := &corev1.Service{}
	err := r.objects.Get(ctx, client.ObjectKeyFromObject(want), svc)
	if apierrors.IsNotFound(err) {
		log.Info("Creating the node metrics Service", "service", klog.KObj(want))
		if err := r.Client.Create(ctx, want); err != nil {
			// AlreadyExists: the cache lags; the error retries.
			return nil, fmt.Errorf("create Service %s: %w", klog.KObj(want), err)
		}
		return want, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get Service %s: %w", klog.KObj(want), err)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || svc.Spec.Type != corev1.ServiceTypeClusterIP {
		log.Info("Replacing the node metrics Service: it is not headless", "service", klog.KObj(svc), "clusterIP", svc.Spec.ClusterIP)
		if err := r.Client.Delete(ctx, svc, client.Preconditions{UID: &svc.UID}); client.IgnoreNotFound(err) != nil {
			return nil, fmt.Errorf("delete Service %s: %w", klog.KObj(svc), err)
		}
		return nil, nil
	}
	if equality.Semantic.DeepEqual(svc.Spec.Ports, want.Spec.Ports) && svc.Spec.Selector == nil &&
		labels.SelectorFromSet(want.Labels).Matches(labels.Set(svc.Labels)) &&
		labels.SelectorFromSet(want.Annotations).Matches(labels.Set(svc.Annotations)) {
		return svc, nil
	}
	log.Info("Updating the node metrics Service", "service", klog.KObj(svc))
	upd := svc.DeepCopy()
	upd.Spec.Ports, upd.Spec.Selector = want.Spec.Ports, nil
	if upd.Labels == nil {
		upd.Labels = map[string]string{}
	}
	maps.Copy(upd.Labels, want.Labels)
	if len(want.Annotations) > 0 {
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		maps.Copy(upd.Annotations, want.Annotations)
	}
	if err := r.Client.Update(ctx, upd); err != nil {
		return nil, fmt.Errorf("update Service %s: %w", klog.KObj(svc), err)
	}
	return upd, nil
}

// applySlice makes the EndpointSlice want from have (nil when absent).
func (r *Reconciler) applySlice(ctx context.Context, want, have *discoveryv1.EndpointSlice) error {
	log := ctrl.LoggerFrom(ctx)
	if have == nil {
		log.Info("Creating EndpointSlice", "endpointSlice", klog.KObj(want), "endpoints", len(want.Endpoints))
		err := r.Client.Create(ctx, want)
		if apierrors.IsAlreadyExists(err) {
			// A slice of the name that the cache, which holds only those
			// labelled as managed by this controller, lacks: its
			// managed-by label was removed or changed. Replaced whole by
			// an update without a resourceVersion; the label brings it
			// back into the cache. (Were it only the cache lagging, the
			// update writes what the next reconcile would.)
			log.Info("Restoring EndpointSlice: its managed-by label was edited", "endpointSlice", klog.KObj(want))
			if err := r.Client.Update(ctx, want.DeepCopy()); err != nil {
				return fmt.Errorf("restore EndpointSlice %s: %w", klog.KObj(want), err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("create EndpointSlice %s: %w", klog.KObj(want), err)
		}
		return nil
	}
	if have.AddressType != want.AddressType {
		// Immutable: replace it; its deletion brings the creation.
		if err := r.Client.Delete(ctx, have, client.Preconditions{UID: &have.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete EndpointSlice %s: %w", klog.KObj(have), err)
		}
		return nil
	}
	if equality.Semantic.DeepEqual(have.Endpoints, want.Endpoints) && equality.Semantic.DeepEqual(have.Ports, want.Ports) &&
		equality.Semantic.DeepEqual(have.OwnerReferences, want.OwnerReferences) &&
		labels.SelectorFromSet(want.Labels).Matches(labels.Set(have.Labels)) {
		return nil
	}
	log.V(1).Info("Updating EndpointSlice", "endpointSlice", klog.KObj(have), "endpoints", len(want.Endpoints))
	upd := have.DeepCopy()
	upd.Endpoints, upd.Ports, upd.OwnerReferences = want.Endpoints, want.Ports, want.OwnerReferences
	maps.Copy(upd.Labels, want.Labels)
	if err := r.Client.Update(ctx, upd); err != nil {
		return fmt.Errorf("update EndpointSlice %s: %w", klog.KObj(have), err)
	}
	return nil
}

// SetupWithManager registers the controller: it watches the operator's
// Nodes (creation, deletion, a change of readiness or addresses) and,
// through a cache of its own restricted to Namespace, the Service and the
// operator's EndpointSlices (an edit or deletion is undone).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	switch {
	case r.Client == nil:
		return errors.New("node metrics controller: Client is nil")
	case r.Namespace == "":
		return errors.New("node metrics controller: Namespace is empty")
	}
	c, err := core.AddCache(mgr, "the node metrics Service", cache.Options{
		DefaultNamespaces: map[string]cache.Config{r.Namespace: {}},
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Service{}:            {Field: fields.OneTermEqualSelector("metadata.name", ServiceName)},
			&discoveryv1.EndpointSlice{}: {Label: labels.SelectorFromSet(labels.Set{discoveryv1.LabelManagedBy: ManagedBy})},
		},
	})
	if err != nil {
		return err
	}
	r.objects = c
	request := reconcile.Request{NamespacedName: client.ObjectKey{Namespace: r.Namespace, Name: ServiceName}}
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{request}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("nodemetrics").
		// Once at start: with no Node and no Service there is no event,
		// and the Service must exist anyway.
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			q.Add(request)
			return nil
		})).
		Watches(&corev1.Node{}, all, builder.WithPredicates(core.OperatorNodes(func(o, n *corev1.Node) bool {
			return nodeReady(o) != nodeReady(n) || !equality.Semantic.DeepEqual(o.Status.Addresses, n.Status.Addresses)
		}))).
		WatchesRawSource(source.Kind(c, &corev1.Service{}, handler.TypedEnqueueRequestsFromMapFunc(
			func(context.Context, *corev1.Service) []reconcile.Request { return []reconcile.Request{request} }))).
		WatchesRawSource(source.Kind(c, &discoveryv1.EndpointSlice{}, handler.TypedEnqueueRequestsFromMapFunc(
			func(context.Context, *discoveryv1.EndpointSlice) []reconcile.Request {
				return []reconcile.Request{request}
			}))).
		Complete(r)
}
