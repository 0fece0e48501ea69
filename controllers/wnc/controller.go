// Package wnc keeps the status of the WindowsNodeConfig singleton: whether
// its spec, in this cluster and with this payload, can configure hosts at
// all. Problems of one host are reported on its WindowsInstance instead.
// It never touches a host.
package wnc

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/payload"
)

// +kubebuilder:rbac:groups=wmco.io,resources=windowsnodeconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups=wmco.io,resources=windowsnodeconfigs/status,verbs=get;update;patch

// Condition reasons on the WindowsNodeConfig.
const (
	// ReasonValid: the configuration renders for this cluster.
	ReasonValid = "Valid"
	// ReasonInvalid: it cannot configure any host; the message says why.
	ReasonInvalid = "InvalidConfiguration"
)

// Reconciler writes WindowsNodeConfig status: Ready (kstatus) true when
// the spec renders for this cluster and payload, else false with the
// reasons, plus Stalled while it is invalid (only an edit helps), and
// observedGeneration.
type Reconciler struct {
	Client client.Client
	// Cluster and Payload are what the instance controller renders with.
	Cluster nodeconfig.ClusterFacts
	Payload *payload.Manifest
}

// Reconcile checks the singleton's spec and records the verdict.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cfg := &wmcov1.WindowsNodeConfig{}
	if err := r.Client.Get(ctx, req.NamespacedName, cfg); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if cfg.Name != wmcov1.WindowsNodeConfigName {
		// The API refuses other names; nothing to say about one.
		return ctrl.Result{}, nil
	}
	base := cfg.DeepCopy()
	setStatus(cfg, nodeconfig.CheckConfig(cfg.Spec, r.Cluster, r.Payload))
	if err := r.Client.Status().Patch(ctx, cfg, client.MergeFrom(base)); err != nil {
		return ctrl.Result{}, fmt.Errorf("patch WindowsNodeConfig status: %w", err)
	}
	return ctrl.Result{}, nil
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
	if r.Client == nil || r.Payload == nil {
		return errors.New("WindowsNodeConfig status controller: Client and Payload are required")
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("windowsnodeconfig-status").
		For(&wmcov1.WindowsNodeConfig{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
}
