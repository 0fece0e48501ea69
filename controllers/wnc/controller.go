// Package wnc keeps the status of the WindowsNodeConfig singleton: whether
// its spec, in this cluster and with this payload, can configure hosts at
// all. Problems of one host are reported on its WindowsInstance instead.
// It never touches a host.
package wnc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/payload"
)

// +kubebuilder:rbac:groups=wmco.io,resources=windowsnodeconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups=wmco.io,resources=windowsnodeconfigs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=wmco.io,resources=windowsinstances,verbs=get;list;watch
// OLM's OperatorCondition of this operator (OpenShift; named by
// $OPERATOR_CONDITION_NAME), to say when the operator must not be upgraded:
// +kubebuilder:rbac:groups=operators.coreos.com,namespace=wmco-system,resources=operatorconditions,verbs=get;update;patch

// Condition reasons on the WindowsNodeConfig.
const (
	// ReasonValid: the configuration renders for this cluster.
	ReasonValid = "Valid"
	// ReasonInvalid: it cannot configure any host; the message says why.
	ReasonInvalid = "InvalidConfiguration"
	// ReasonNoPayload: no payload the operator ships fits the API server.
	ReasonNoPayload = "NoCompatiblePayload"
	// ReasonHostsUpgrading: Upgradeable is False while hosts upgrade.
	ReasonHostsUpgrading = "HostsUpgrading"
	// ReasonNoUpgradeInProgress: Upgradeable is True.
	ReasonNoUpgradeInProgress = "NoUpgradeInProgress"
)

// ConditionUpgradeable on the WindowsNodeConfig (and OLM's
// OperatorCondition) is False while any host is mid-upgrade: replacing
// the operator then would leave hosts half upgraded.
const ConditionUpgradeable = "Upgradeable"

// Reconciler writes WindowsNodeConfig status: Ready (kstatus) true when
// the spec renders for this cluster and payload, else false with the
// reasons, plus Stalled while it is invalid (only an edit helps), and
// observedGeneration.
type Reconciler struct {
	Client client.Client
	// Cluster and the payloads are what the instance controller renders
	// with; ServerVersion selects the payload.
	Cluster nodeconfig.ClusterFacts
	// ClusterSource, when set, keeps the cluster facts current instead of
	// Cluster, and its changes re-check the spec.
	ClusterSource core.ClusterSource
	Payloads      *payload.Catalog
	ServerVersion core.VersionSource
	// Namespace is the operator's; OperatorConditionName, when set (OLM
	// sets $OPERATOR_CONDITION_NAME), names its OperatorCondition there.
	Namespace             string
	OperatorConditionName string
}

// Reconcile checks the singleton's spec and records the verdict.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if req.Name != wmcov1.WindowsNodeConfigName {
		// The API refuses other names; nothing to say about one.
		return ctrl.Result{}, nil
	}
	var list wmcov1.WindowsInstanceList
	if err := r.Client.List(ctx, &list); err != nil {
		return ctrl.Result{}, fmt.Errorf("list WindowsInstances: %w", err)
	}
	upgradeable := upgradeableCondition(list.Items)
	if err := r.setOperatorCondition(ctx, upgradeable); err != nil {
		return ctrl.Result{}, err
	}
	cfg := &wmcov1.WindowsNodeConfig{}
	if err := r.Client.Get(ctx, req.NamespacedName, cfg); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	base := cfg.DeepCopy()
	server := r.ServerVersion.Version()
	sel, err := r.Payloads.Select(server)
	if err != nil {
		setNoPayload(cfg, err)
	} else {
		cluster, _ := r.ClusterSource.ClusterFacts()
		cluster.KubernetesVersion = server
		setStatus(cfg, nodeconfig.CheckConfig(cfg.Spec, cluster, sel.Manifest))
	}
	upgradeable.ObservedGeneration = cfg.Generation
	meta.SetStatusCondition(&cfg.Status.Conditions, upgradeable)
	if err := r.Client.Status().Patch(ctx, cfg, client.MergeFrom(base)); err != nil {
		return ctrl.Result{}, fmt.Errorf("patch WindowsNodeConfig status: %w", err)
	}
	return ctrl.Result{}, nil
}

// upgradeableCondition is False while any instance is mid-upgrade.
func upgradeableCondition(items []wmcov1.WindowsInstance) metav1.Condition {
	var busy []string
	for _, wi := range items {
		if wi.Status.Upgrade != nil {
			busy = append(busy, wi.Name+" ("+wi.Status.Upgrade.Progress+")")
		}
	}
	slices.Sort(busy)
	if len(busy) == 0 {
		return metav1.Condition{Type: ConditionUpgradeable, Status: metav1.ConditionTrue, Reason: ReasonNoUpgradeInProgress, Message: "no host is being upgraded"}
	}
	return metav1.Condition{Type: ConditionUpgradeable, Status: metav1.ConditionFalse, Reason: ReasonHostsUpgrading,
		Message: core.Truncate(fmt.Sprintf("%d hosts are being upgraded: %s", len(busy), strings.Join(busy, ", ")), core.MaxConditionMessageBytes)}
}

// setOperatorCondition mirrors Upgradeable into OLM's OperatorCondition
// (operators.coreos.com/v2, spec.conditions), which OLM reads before it
// upgrades the operator. Without OLM there is none to write.
func (r *Reconciler) setOperatorCondition(ctx context.Context, c metav1.Condition) error {
	if r.OperatorConditionName == "" {
		return nil
	}
	oc := &unstructured.Unstructured{}
	oc.SetGroupVersionKind(operatorConditionGVK)
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.OperatorConditionName}, oc); err != nil {
		return fmt.Errorf("read OperatorCondition %s/%s: %w", r.Namespace, r.OperatorConditionName, err)
	}
	raw, _, err := unstructured.NestedSlice(oc.Object, "spec", "conditions")
	if err != nil {
		return fmt.Errorf("OperatorCondition %s spec.conditions: %w", r.OperatorConditionName, err)
	}
	var conds []metav1.Condition
	for _, item := range raw {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		var cur metav1.Condition
		if runtime.DefaultUnstructuredConverter.FromUnstructured(m, &cur) == nil {
			conds = append(conds, cur)
		}
	}
	if old := meta.FindStatusCondition(conds, c.Type); old != nil && old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message {
		return nil
	}
	meta.SetStatusCondition(&conds, c)
	out := make([]any, 0, len(conds))
	for i := range conds {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&conds[i])
		if err != nil {
			return err
		}
		out = append(out, m)
	}
	if err := unstructured.SetNestedSlice(oc.Object, out, "spec", "conditions"); err != nil {
		return err
	}
	if err := r.Client.Update(ctx, oc); err != nil {
		return fmt.Errorf("update OperatorCondition %s/%s: %w", r.Namespace, r.OperatorConditionName, err)
	}
	return nil
}

// operatorConditionGVK is OLM's OperatorCondition, version the operator
// writes.
var operatorConditionGVK = schema.GroupVersionKind{Group: "operators.coreos.com", Version: "v2", Kind: "OperatorCondition"}

// setNoPayload records that no payload fits the API server: nothing can
// be configured until the operator or the control plane changes (not
// Stalled: no edit of the spec helps, and it resolves itself then).
func setNoPayload(cfg *wmcov1.WindowsNodeConfig, err error) {
	cfg.Status.ObservedGeneration = cfg.Generation
	meta.SetStatusCondition(&cfg.Status.Conditions, metav1.Condition{
		Type: wmcov1.ConditionReady, Status: metav1.ConditionFalse, Reason: ReasonNoPayload,
		Message: core.Truncate(err.Error(), core.MaxConditionMessageBytes), ObservedGeneration: cfg.Generation,
	})
	meta.RemoveStatusCondition(&cfg.Status.Conditions, wmcov1.ConditionStalled)
}

// setStatus records the result of the check.
func setStatus(cfg *wmcov1.WindowsNodeConfig, checkErr error) {
	cfg.Status.ObservedGeneration = cfg.Generation
	if checkErr == nil {
		meta.SetStatusCondition(&cfg.Status.Conditions, metav1.Condition{
			Type: wmcov1.ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonValid,
			Message: "the configuration renders for this cluster", ObservedGeneration: cfg.Generation,
		})
		meta.RemoveStatusCondition(&cfg.Status.Conditions, wmcov1.ConditionStalled)
		return
	}
	msg := core.Truncate(checkErr.Error(), core.MaxConditionMessageBytes)
	for _, typ := range []string{wmcov1.ConditionReady, wmcov1.ConditionStalled} {
		status := metav1.ConditionTrue
		if typ == wmcov1.ConditionReady {
			status = metav1.ConditionFalse
		}
		meta.SetStatusCondition(&cfg.Status.Conditions, metav1.Condition{
			Type: typ, Status: status, Reason: ReasonInvalid, Message: msg, ObservedGeneration: cfg.Generation,
		})
	}
}

// SetupWithManager registers the controller; it acts on spec changes of
// the singleton.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Payloads == nil || r.ServerVersion == nil {
		return errors.New("WindowsNodeConfig status controller: Client, Payloads and ServerVersion are required")
	}
	singleton := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: wmcov1.WindowsNodeConfigName}}}
	})
	b := ctrl.NewControllerManagedBy(mgr).
		Named("windowsnodeconfig-status").
		For(&wmcov1.WindowsNodeConfig{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// An instance starting or ending an upgrade changes Upgradeable.
		Watches(&wmcov1.WindowsInstance{}, singleton, builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(e event.UpdateEvent) bool {
				o, ok1 := e.ObjectOld.(*wmcov1.WindowsInstance)
				n, ok2 := e.ObjectNew.(*wmcov1.WindowsInstance)
				return !ok1 || !ok2 || (o.Status.Upgrade == nil) != (n.Status.Upgrade == nil)
			},
		}))
	if r.ClusterSource == nil {
		r.ClusterSource = core.StaticCluster(r.Cluster)
	}
	ch := make(chan event.GenericEvent, 1)
	wake := func() {
		select {
		case ch <- event.GenericEvent{Object: &wmcov1.WindowsNodeConfig{}}:
		default:
		}
	}
	if n, ok := r.ServerVersion.(core.VersionNotifier); ok {
		n.OnChange(func(_, _ string) { wake() })
	}
	if n, ok := r.ClusterSource.(core.ClusterNotifier); ok {
		n.OnChange(wake)
	}
	return b.WatchesRawSource(source.Channel(ch, singleton)).Complete(r)
}
