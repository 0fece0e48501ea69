// Package inventory turns the lists admins keep of their Windows hosts (the
// windows-instances ConfigMap and Windows Machines) into WindowsInstance
// objects. It only translates: it never touches a host.
package inventory

import (
	"context"
	"errors"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/hostaddr"
	hostlist "github.com/openwmco/wmco/pkg/inventory"
)

// Event reasons of the ConfigMap inventory, on the windows-instances
// ConfigMap.
const (
	// ReasonInvalidEntry: an entry was rejected; the message names its key.
	ReasonInvalidEntry = "InvalidEntry"
	// ReasonHostConflict: a listed host already has a WindowsInstance that
	// the inventory does not own, so the entry is not applied.
	ReasonHostConflict = "HostConflict"
	// ReasonInstanceKept: an entry turned invalid; its WindowsInstance is
	// kept rather than deprovisioned.
	ReasonInstanceKept = "InstanceKept"
	// ReasonInstanceCreated and ReasonInstanceDeleted record what the
	// inventory did.
	ReasonInstanceCreated = "InstanceCreated"
	ReasonInstanceDeleted = "InstanceDeleted"
)

// ConfigMapReconciler turns the windows-instances ConfigMap in the
// operator's namespace into WindowsInstance objects labelled
// wmco.io/source=configmap, one per listed host. It only translates: it
// never touches a host.
//
// Every request is the one ConfigMap: events of configmap-sourced
// WindowsInstances map to it too, so an instance deleted or edited by hand
// is put back as the inventory says.
type ConfigMapReconciler struct {
	// Client reads WindowsInstances from the manager's cache and writes them.
	Client client.Client
	// APIReader reads around the cache. A ConfigMap missing from the cache
	// is confirmed with it before every configmap-sourced instance is
	// deleted. Defaults to the manager's API reader.
	APIReader client.Reader
	// Config names the operator's namespace.
	Config core.Config
	// Recorder emits Events on the ConfigMap (events.k8s.io/v1), e.g.
	// mgr.GetEventRecorder("wmco-inventory").
	Recorder events.EventRecorder

	// configMaps reads the inventory ConfigMap from a cache that holds only
	// that one object; set by SetupWithManager.
	configMaps client.Reader
}

// The ConfigMap is read through a cache restricted to its namespace and
// name, so a list or watch needs no more than this one object:
// +kubebuilder:rbac:groups="",namespace=wmco-system,resources=configmaps,resourceNames=windows-instances,verbs=get;list;watch
// +kubebuilder:rbac:groups=wmco.io,resources=windowsinstances,verbs=get;list;watch;create;update;patch;delete
// Events on the ConfigMap, in the operator's namespace:
// +kubebuilder:rbac:groups=events.k8s.io,namespace=wmco-system,resources=events,verbs=create;patch

// inventoryScope is the state of one ConfigMap reconcile.
type inventoryScope struct {
	// configMap is nil when the ConfigMap does not exist: the inventory is
	// empty.
	configMap *corev1.ConfigMap
	entries   []hostlist.Entry
	problems  []hostlist.Problem
	// ours are the configmap-sourced WindowsInstances by name.
	ours map[string]*wmcov1.WindowsInstance
	// others maps the normalised address of every other WindowsInstance
	// (created by a user or for a Machine) to its name.
	others map[string]string
}

// Reconcile applies the inventory: report bad entries, create or update an
// instance per good entry, delete instances of hosts no longer listed.
func (r *ConfigMapReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	s := &inventoryScope{}

	cm := &corev1.ConfigMap{}
	err := r.configMaps.Get(ctx, req.NamespacedName, cm)
	switch {
	case apierrors.IsNotFound(err):
		// Deleting every configmap-sourced host is drastic: make sure the
		// ConfigMap is really gone, not merely missing from the cache.
		err = r.APIReader.Get(ctx, req.NamespacedName, &corev1.ConfigMap{})
		if err == nil {
			// The cache lags; its create event brings us back.
			log.Info("Inventory ConfigMap not in the cache yet", "configMap", req.NamespacedName)
			return ctrl.Result{}, nil
		}
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("read ConfigMap %s: %w", req.NamespacedName, err)
		}
		log.V(1).Info("Inventory ConfigMap not found; the inventory is empty", "configMap", req.NamespacedName)
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("read ConfigMap %s: %w", req.NamespacedName, err)
	default:
		s.configMap = cm
		s.entries, s.problems = hostlist.Parse(cm.Data)
		s.problems = append(s.problems, binaryDataProblems(cm.BinaryData)...)
	}

	if err := r.listInstances(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	r.reportProblems(s)
	var errs []error
	for _, e := range s.entries {
		if err := r.applyEntry(ctx, s, e); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, r.prune(ctx, s))
	return core.QuietCacheLag(ctx, ctrl.Result{}, kerrors.NewAggregate(errs))
}

// binaryDataProblems rejects every binaryData key: hosts are listed under
// data only.
func binaryDataProblems(binary map[string][]byte) []hostlist.Problem {
	var problems []hostlist.Problem
	for key := range binary {
		problems = append(problems, hostlist.Problem{Key: key, Reason: "hosts are read from data, not binaryData"})
	}
	sort.Slice(problems, func(i, j int) bool { return problems[i].Key < problems[j].Key })
	return problems
}

// listInstances fills s.ours and s.others from the cache.
func (r *ConfigMapReconciler) listInstances(ctx context.Context, s *inventoryScope) error {
	var list wmcov1.WindowsInstanceList
	if err := r.Client.List(ctx, &list); err != nil {
		return fmt.Errorf("list WindowsInstances: %w", err)
	}
	s.ours = map[string]*wmcov1.WindowsInstance{}
	s.others = map[string]string{}
	for i := range list.Items {
		wi := &list.Items[i]
		if wi.Labels[wmcov1.LabelSource] == wmcov1.SourceConfigMap {
			s.ours[wi.Name] = wi
			continue
		}
		s.others[hostaddr.Key(wi.Spec.Address)] = wi.Name
	}
	return nil
}

// reportProblems emits one Warning Event per rejected entry. The recorder
// folds repeats of an Event into one (a series), so a bad entry has one
// Event per revision of the ConfigMap however often it is reconciled.
func (r *ConfigMapReconciler) reportProblems(s *inventoryScope) {
	for _, p := range s.problems {
		r.Recorder.Eventf(entryRef(s.configMap, p.Key), nil, corev1.EventTypeWarning, ReasonInvalidEntry, "ParseEntry",
			"Entry %q is invalid and ignored: %s", p.Key, p.Reason)
	}
}

// applyEntry creates or updates the WindowsInstance of one good entry.
func (r *ConfigMapReconciler) applyEntry(ctx context.Context, s *inventoryScope, e hostlist.Entry) error {
	name := hostlist.InstanceName(e.Address)
	log := ctrl.LoggerFrom(ctx).WithValues("windowsInstance", klog.KRef("", name), "key", e.Key)

	wi := &wmcov1.WindowsInstance{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: name}, wi)
	if apierrors.IsNotFound(err) {
		if other, ok := s.others[e.Address]; ok {
			r.Recorder.Eventf(entryRef(s.configMap, e.Key), nil, corev1.EventTypeWarning, ReasonHostConflict, "CreateInstance",
				"Entry %q is not applied: host %s is already WindowsInstance %s, which the inventory does not own", e.Key, e.Address, other)
			return nil
		}
		wi = &wmcov1.WindowsInstance{}
		wi.Name = name
		wi.Labels = map[string]string{wmcov1.LabelSource: wmcov1.SourceConfigMap}
		setInventorySpec(&wi.Spec, e)
		log.Info("Creating WindowsInstance")
		if err := r.Client.Create(ctx, wi); err != nil {
			// AlreadyExists means the cache lags: Reconcile retries
			// quietly (core.QuietCacheLag).
			return fmt.Errorf("create WindowsInstance %s for entry %q: %w", name, e.Key, err)
		}
		r.Recorder.Eventf(entryRef(s.configMap, e.Key), wi, corev1.EventTypeNormal, ReasonInstanceCreated, "CreateInstance",
			"Created WindowsInstance %s for entry %q", name, e.Key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get WindowsInstance %s: %w", name, err)
	}
	if wi.Labels[wmcov1.LabelSource] != wmcov1.SourceConfigMap {
		r.Recorder.Eventf(entryRef(s.configMap, e.Key), wi, corev1.EventTypeWarning, ReasonHostConflict, "UpdateInstance",
			"Entry %q is not applied: WindowsInstance %s exists and the inventory does not own it (no label %s=%s)",
			e.Key, name, wmcov1.LabelSource, wmcov1.SourceConfigMap)
		return nil
	}
	if !wi.DeletionTimestamp.IsZero() {
		// No requeue: the WindowsInstance's delete event brings us back to
		// create it again once its host is deconfigured.
		log.Info("WindowsInstance is being deleted; it is created again once it is gone")
		return nil
	}
	before := wi.DeepCopy()
	setInventorySpec(&wi.Spec, e)
	if equality.Semantic.DeepEqual(before.Spec, wi.Spec) {
		return nil
	}
	log.Info("Updating WindowsInstance")
	// A merge patch of the inventory's fields only: status and the fields
	// the inventory does not own are left as they are.
	if err := r.Client.Patch(ctx, wi, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("update WindowsInstance %s for entry %q: %w", name, e.Key, err)
	}
	return nil
}

// entryRef refers to one entry of the ConfigMap, data[<key>], at the
// ConfigMap's current revision. Events about an entry regard it rather than
// the whole ConfigMap because events.k8s.io folds Events that differ only
// in their note into one series: with the field path in the reference each
// entry keeps an Event of its own, and an edit of the ConfigMap (a new
// revision) starts new ones.
func entryRef(cm *corev1.ConfigMap, key string) *corev1.ObjectReference {
	return &corev1.ObjectReference{
		APIVersion:      "v1",
		Kind:            "ConfigMap",
		Namespace:       cm.Namespace,
		Name:            cm.Name,
		UID:             cm.UID,
		ResourceVersion: cm.ResourceVersion,
		FieldPath:       "data[" + key + "]",
	}
}

// setInventorySpec sets the fields of spec that the inventory owns.
// Credentials and paused are not the inventory's: they keep their values.
func setInventorySpec(spec *wmcov1.WindowsInstanceSpec, e hostlist.Entry) {
	spec.Address = e.Address
	spec.Username = e.Username
	spec.Port = wmcov1.PortOrDefault(e.Port)
	spec.NodeName = e.NodeName
	spec.HostKey = e.HostKey
}

// prune deletes configmap-sourced instances whose host is no longer listed,
// except those of entries that are listed but invalid.
func (r *ConfigMapReconciler) prune(ctx context.Context, s *inventoryScope) error {
	log := ctrl.LoggerFrom(ctx)
	listed := map[string]bool{}
	for _, e := range s.entries {
		listed[hostlist.InstanceName(e.Address)] = true
	}
	invalid := map[string]string{} // instance name -> key
	for _, p := range s.problems {
		if p.Address != "" {
			invalid[hostlist.InstanceName(p.Address)] = p.Key
		}
	}
	names := make([]string, 0, len(s.ours))
	for name := range s.ours {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		wi := s.ours[name]
		if listed[name] {
			continue
		}
		if key, ok := invalid[name]; ok {
			r.Recorder.Eventf(entryRef(s.configMap, key), wi, corev1.EventTypeWarning, ReasonInstanceKept, "DeleteInstance",
				"WindowsInstance %s is kept and not deprovisioned while its entry %q is invalid; fix or remove the entry", name, key)
			continue
		}
		if !wi.DeletionTimestamp.IsZero() {
			continue
		}
		log.Info("Deleting WindowsInstance: its host is no longer listed", "windowsInstance", klog.KObj(wi))
		err := r.Client.Delete(ctx, wi, client.Preconditions{UID: &wi.UID})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			// Gone already, or replaced by a newer object: its events bring
			// us back if anything is left to do.
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("delete WindowsInstance %s: %w", name, err))
			continue
		}
		if s.configMap != nil {
			r.Recorder.Eventf(s.configMap, wi, corev1.EventTypeNormal, ReasonInstanceDeleted, "DeleteInstance",
				"Deleted WindowsInstance %s: its host is no longer listed", name)
		}
	}
	return kerrors.NewAggregate(errs)
}

// SetupWithManager checks the reconciler's dependencies and registers it
// with mgr: it watches the windows-instances ConfigMap in Config.Namespace
// (through a cache of its own restricted to that one object) and the
// WindowsInstances it owns.
func (r *ConfigMapReconciler) SetupWithManager(mgr ctrl.Manager) error {
	switch {
	case r.Client == nil:
		return errors.New("ConfigMapReconciler: Client is nil")
	case r.Recorder == nil:
		return errors.New("ConfigMapReconciler: Recorder is nil")
	case r.Config.Namespace == "":
		return errors.New("ConfigMapReconciler: Config.Namespace is empty")
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	// Notes carry entry keys and reasons: over the API server's limit the
	// whole Event would be lost.
	r.Recorder = core.Recorder(r.Recorder)
	key := client.ObjectKey{Namespace: r.Config.Namespace, Name: wmcov1.InventoryConfigMapName}
	cmCache, err := core.AddCache(mgr, "ConfigMap "+key.String(), cache.Options{
		DefaultNamespaces:    map[string]cache.Config{key.Namespace: {}},
		DefaultFieldSelector: fields.OneTermEqualSelector("metadata.name", key.Name),
	})
	if err != nil {
		return err
	}
	r.configMaps = cmCache

	isInventory := predicate.NewTypedPredicateFuncs(func(cm *corev1.ConfigMap) bool {
		return cm.Namespace == key.Namespace && cm.Name == key.Name
	})
	toInventory := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: key}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("configmap-inventory").
		WatchesRawSource(source.Kind(cmCache, &corev1.ConfigMap{},
			&handler.TypedEnqueueRequestForObject[*corev1.ConfigMap]{}, isInventory)).
		Watches(&wmcov1.WindowsInstance{}, toInventory, builder.WithPredicates(inventoryInstanceChanged())).
		Complete(r)
}

// inventoryInstanceChanged passes the WindowsInstance events that can change
// what the inventory must do: any change to a configmap-sourced instance
// other than its status, a label change (an instance given or stripped of
// the source label) and any delete (it frees a name a listed host may be
// waiting for).
func inventoryInstanceChanged() predicate.Funcs {
	ours := func(o client.Object) bool { return o.GetLabels()[wmcov1.LabelSource] == wmcov1.SourceConfigMap }
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return ours(e.Object) },
		DeleteFunc: func(event.DeleteEvent) bool { return true },
		UpdateFunc: func(e event.UpdateEvent) bool {
			if e.ObjectOld.GetLabels()[wmcov1.LabelSource] != e.ObjectNew.GetLabels()[wmcov1.LabelSource] {
				return true
			}
			return ours(e.ObjectNew) && (e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() ||
				!e.ObjectOld.GetDeletionTimestamp().Equal(e.ObjectNew.GetDeletionTimestamp()))
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}
