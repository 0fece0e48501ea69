// Package runtimeclass keeps one RuntimeClass per Windows build among the
// operator's Nodes (windows-2019, windows-2022, windows-2025, else
// windows-<build>), so that a pod names the build its container image was
// made for and is scheduled only onto Nodes of that build, tolerating the
// Windows taints. The builds come from the Nodes the operator made
// (labelled wmco.io/instance): their node.kubernetes.io/windows-build
// label is exactly what the RuntimeClass must select on, and a
// RuntimeClass is kept exactly while a Node it can schedule onto exists
// (NotReady included, so a reboot does not make pods that name it fail
// admission). It never touches a host.
package runtimeclass

import (
	"context"
	"errors"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/nodeconfig"
)

// +kubebuilder:rbac:groups=node.k8s.io,resources=runtimeclasses,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=wmco.io,resources=windowsnodeconfigs,verbs=get;list;watch

// request is the one request of the controller: every event asks for all
// RuntimeClasses to be brought in line.
var request = reconcile.Request{NamespacedName: client.ObjectKey{Name: "windows-runtimeclasses"}}

// Reconciler keeps the RuntimeClasses.
type Reconciler struct {
	// Client reads Nodes (the manager's cache holds the operator's),
	// RuntimeClasses and the WindowsNodeConfig, and writes RuntimeClasses.
	Client client.Client
}

// Reconcile creates, updates and deletes the operator's RuntimeClasses so
// there is one per build among the Nodes. A RuntimeClass of the same name
// that the operator did not make is left alone.
func (r *Reconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	var nodes corev1.NodeList
	if err := r.Client.List(ctx, &nodes, client.HasLabels{wmcov1.LabelInstance}); err != nil {
		return ctrl.Result{}, fmt.Errorf("list Windows Nodes: %w", err)
	}
	builds, unreadable := BuildsOf(nodes.Items)
	if len(unreadable) > 0 {
		// The kubelet sets the label at registration; a Node without it
		// gets no RuntimeClass until it has one (a label change is an
		// event).
		log.Info("Windows Nodes without a readable windows-build label", "nodes", unreadable)
	}
	taints, err := r.taints(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	var existing nodev1.RuntimeClassList
	if err := r.Client.List(ctx, &existing); err != nil {
		return ctrl.Result{}, fmt.Errorf("list RuntimeClasses: %w", err)
	}
	have := map[string]*nodev1.RuntimeClass{}
	for i := range existing.Items {
		have[existing.Items[i].Name] = &existing.Items[i]
	}
	want := map[string]bool{}
	var errs []error
	for _, b := range builds {
		rc := Desired(b, taints)
		want[rc.Name] = true
		if err := r.apply(ctx, rc, have[rc.Name]); err != nil {
			errs = append(errs, err)
		}
	}
	for name, rc := range have {
		if want[name] || rc.Labels[LabelManagedBy] != ManagedByValue {
			continue
		}
		log.Info("Deleting RuntimeClass: no Node of its build remains", "runtimeClass", klog.KObj(rc))
		if err := r.Client.Delete(ctx, rc, client.Preconditions{UID: &rc.UID}); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("delete RuntimeClass %s: %w", name, err))
		}
	}
	return ctrl.Result{}, kerrors.NewAggregate(errs)
}

// apply makes the RuntimeClass rc from have (nil when absent).
func (r *Reconciler) apply(ctx context.Context, rc, have *nodev1.RuntimeClass) error {
	log := ctrl.LoggerFrom(ctx)
	switch {
	case have == nil:
		log.Info("Creating RuntimeClass", "runtimeClass", klog.KObj(rc), "windowsBuild", rc.Scheduling.NodeSelector[corev1.LabelWindowsBuild])
		if err := r.Client.Create(ctx, rc); err != nil {
			// AlreadyExists: the cache lags; the error retries.
			return fmt.Errorf("create RuntimeClass %s: %w", rc.Name, err)
		}
		return nil
	case have.Labels[LabelManagedBy] != ManagedByValue:
		// An admin's own RuntimeClass of that name (upstream WMCO's
		// documentation has them create windows-2019 and windows-2022).
		log.Info("A RuntimeClass the operator did not make holds the name; leaving it alone", "runtimeClass", klog.KObj(have))
		return nil
	case have.Handler != rc.Handler:
		// The handler is immutable: replace the object; its deletion
		// brings the creation.
		log.Info("Replacing RuntimeClass with another handler", "runtimeClass", klog.KObj(have), "handler", have.Handler)
		if err := r.Client.Delete(ctx, have, client.Preconditions{UID: &have.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete RuntimeClass %s: %w", have.Name, err)
		}
		return nil
	case equality.Semantic.DeepEqual(have.Scheduling, rc.Scheduling) && equality.Semantic.DeepEqual(have.Overhead, rc.Overhead) &&
		labelsHold(have.Labels, rc.Labels):
		return nil
	}
	log.Info("Updating RuntimeClass", "runtimeClass", klog.KObj(have))
	upd := have.DeepCopy()
	maps.Copy(upd.Labels, rc.Labels)
	upd.Scheduling, upd.Overhead = rc.Scheduling, rc.Overhead
	if err := r.Client.Update(ctx, upd); err != nil {
		return fmt.Errorf("update RuntimeClass %s: %w", rc.Name, err)
	}
	return nil
}

// labelsHold says whether have carries every label of want.
func labelsHold(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// taints are the WindowsNodeConfig's taints (its default without one).
func (r *Reconciler) taints(ctx context.Context) ([]wmcov1.NodeTaint, error) {
	cfg := &wmcov1.WindowsNodeConfig{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: wmcov1.WindowsNodeConfigName}, cfg)
	if apierrors.IsNotFound(err) {
		return nodeconfig.Defaulted(wmcov1.WindowsNodeConfigSpec{}).Taints, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read WindowsNodeConfig: %w", err)
	}
	return nodeconfig.Defaulted(cfg.Spec).Taints, nil
}

// SetupWithManager registers the controller: it watches the operator's
// Nodes (creation, deletion, a change of the windows-build label), the
// WindowsNodeConfig's spec and every RuntimeClass (an edit or deletion of
// one of the operator's is undone).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		return errors.New("RuntimeClass controller: Client is nil")
	}
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{request}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("runtimeclass").
		Watches(&corev1.Node{}, all, builder.WithPredicates(core.OperatorNodes(func(o, n *corev1.Node) bool {
			return o.Labels[corev1.LabelWindowsBuild] != n.Labels[corev1.LabelWindowsBuild]
		}))).
		Watches(&wmcov1.WindowsNodeConfig{}, all, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&nodev1.RuntimeClass{}, all).
		Complete(r)
}
