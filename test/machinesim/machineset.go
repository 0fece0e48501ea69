package machinesim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// DeleteMachineAnnotation marks a Machine a MachineSet deletes first when
// it scales down, as in the Machine API.
const DeleteMachineAnnotation = "machine.openshift.io/delete-machine"

// MachineAnnotation is the annotation of a Node naming its Machine
// (namespace/name), as the Machine API's nodelink controller sets it.
const MachineAnnotation = "machine.openshift.io/machine"

// machineSetReconciler is the MachineSet controller.
type machineSetReconciler struct{ c *Cloud }

func (r *machineSetReconciler) setup(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("machinesim-machineset").
		For(&machinev1beta1.MachineSet{}).
		Owns(&machinev1beta1.Machine{}).
		// A Node turning Ready changes its MachineSet's readyReplicas.
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.machineSetOfNode)).
		Complete(r)
}

// machineSetOfNode maps a Node to the MachineSet of its Machine.
func (r *machineSetReconciler) machineSetOfNode(ctx context.Context, o client.Object) []reconcile.Request {
	ns, name, ok := strings.Cut(o.GetAnnotations()[MachineAnnotation], "/")
	if !ok || ns != r.c.opts.Namespace {
		return nil
	}
	m := &machinev1beta1.Machine{}
	if err := r.c.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, m); err != nil {
		return nil
	}
	if ref := metav1.GetControllerOf(m); ref != nil && ref.Kind == "MachineSet" {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: ns, Name: ref.Name}}}
	}
	return nil
}

// Reconcile keeps spec.replicas Machines of one MachineSet.
func (r *machineSetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	// The cache holds the Cloud's namespace only.
	ms := &machinev1beta1.MachineSet{}
	if err := r.c.client.Get(ctx, req.NamespacedName, ms); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ms.DeletionTimestamp.IsZero() {
		// The garbage collector deletes its Machines (owner references).
		return ctrl.Result{}, nil
	}
	selector, err := metav1.LabelSelectorAsSelector(&ms.Spec.Selector)
	if err != nil || selector.Empty() {
		return ctrl.Result{}, r.setStatusError(ctx, ms, fmt.Sprintf("invalid selector: %v", err))
	}
	if !selector.Matches(labels.Set(ms.Spec.Template.Labels)) {
		return ctrl.Result{}, r.setStatusError(ctx, ms, "the selector does not match the template's labels")
	}
	// Live, not from the cache: a Machine created a moment ago must count.
	var list machinev1beta1.MachineList
	if err := r.c.reader.List(ctx, &list, client.InNamespace(ms.Namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return ctrl.Result{}, err
	}
	var machines []*machinev1beta1.Machine
	for i := range list.Items {
		m := &list.Items[i]
		ref := metav1.GetControllerOf(m)
		switch {
		case ref != nil && ref.UID == ms.UID:
		case ref == nil && m.DeletionTimestamp.IsZero():
			// Adopt it, as the MachineSet controller does.
			patch := client.MergeFrom(m.DeepCopy())
			m.OwnerReferences = append(m.OwnerReferences, ownerRef(ms))
			if err := r.c.client.Patch(ctx, m, patch); err != nil {
				return ctrl.Result{}, fmt.Errorf("adopt Machine %s: %w", m.Name, err)
			}
		default:
			continue
		}
		machines = append(machines, m)
	}
	want := int(ptr.Deref(ms.Spec.Replicas, 1))
	switch diff := len(machines) - want; {
	case diff < 0:
		for range -diff {
			m := newMachine(ms)
			if err := r.c.client.Create(ctx, m); err != nil {
				return ctrl.Result{}, fmt.Errorf("create a Machine of MachineSet %s: %w", ms.Name, err)
			}
			r.c.record(m.Name, EventMachineCreated, "by MachineSet %s", ms.Name)
			machines = append(machines, m)
		}
	case diff > 0:
		for _, m := range toDelete(machines, diff, ms.Spec.DeletePolicy) {
			if !m.DeletionTimestamp.IsZero() {
				continue
			}
			// Recorded first: the deletion's own events may come before
			// Delete returns.
			r.c.recordOnce("scaledown/"+string(m.UID), m.Name, EventMachineDeleted, "by MachineSet %s", ms.Name)
			if err := r.c.client.Delete(ctx, m, client.Preconditions{UID: &m.UID}); err != nil && !apierrors.IsNotFound(err) {
				return ctrl.Result{}, fmt.Errorf("delete Machine %s of MachineSet %s: %w", m.Name, ms.Name, err)
			}
		}
	}
	return r.setStatus(ctx, ms, selector, machines)
}

// newMachine is a Machine from the MachineSet's template.
func newMachine(ms *machinev1beta1.MachineSet) *machinev1beta1.Machine {
	t := ms.Spec.Template.DeepCopy()
	return &machinev1beta1.Machine{
		ObjectMeta: metav1.ObjectMeta{
			Name:            ms.Name + "-" + utilrand.String(5),
			Namespace:       ms.Namespace,
			Labels:          t.Labels,
			Annotations:     t.Annotations,
			OwnerReferences: []metav1.OwnerReference{ownerRef(ms)},
		},
		Spec: t.Spec,
	}
}

func ownerRef(ms *machinev1beta1.MachineSet) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: machinev1beta1.GroupVersion.String(), Kind: "MachineSet", Name: ms.Name, UID: ms.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}
}

// toDelete picks n Machines to delete, as the Machine API does: Machines
// being deleted first, then those annotated DeleteMachineAnnotation, then
// those without a Node or with an error, then by the delete policy
// (Newest, the default here for predictable tests; Oldest; Random).
func toDelete(machines []*machinev1beta1.Machine, n int, policy string) []*machinev1beta1.Machine {
	rank := func(m *machinev1beta1.Machine) int {
		switch {
		case !m.DeletionTimestamp.IsZero():
			return 0
		case m.Annotations[DeleteMachineAnnotation] != "":
			return 1
		case m.Status.NodeRef == nil || m.Status.ErrorMessage != nil:
			return 2
		}
		return 3
	}
	sorted := slices.Clone(machines)
	if policy == string(machinev1beta1.RandomMachineSetDeletePolicy) {
		rand.Shuffle(len(sorted), func(i, j int) { sorted[i], sorted[j] = sorted[j], sorted[i] })
	}
	slices.SortStableFunc(sorted, func(a, b *machinev1beta1.Machine) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		ta, tb := a.CreationTimestamp.Time, b.CreationTimestamp.Time
		switch policy {
		case string(machinev1beta1.RandomMachineSetDeletePolicy):
			return 0
		case string(machinev1beta1.OldestMachineSetDeletePolicy):
			return ta.Compare(tb)
		}
		if c := tb.Compare(ta); c != 0 {
			return c
		}
		return strings.Compare(b.Name, a.Name)
	})
	return sorted[:n]
}

// setStatus reports the replicas.
func (r *machineSetReconciler) setStatus(ctx context.Context, ms *machinev1beta1.MachineSet, selector labels.Selector, machines []*machinev1beta1.Machine) (ctrl.Result, error) {
	before := ms.DeepCopy()
	st := &ms.Status
	st.Replicas = int32(len(machines))
	st.FullyLabeledReplicas, st.ReadyReplicas, st.AvailableReplicas = 0, 0, 0
	var requeue time.Duration
	for _, m := range machines {
		if labels.SelectorFromSet(ms.Spec.Template.Labels).Matches(labels.Set(m.Labels)) {
			st.FullyLabeledReplicas++
		}
		ready, since, err := r.nodeReady(ctx, m)
		if err != nil {
			return ctrl.Result{}, err
		}
		if !ready {
			continue
		}
		st.ReadyReplicas++
		minReady := time.Duration(ms.Spec.MinReadySeconds) * time.Second
		if wait := minReady - time.Since(since); wait > 0 {
			if requeue == 0 || wait < requeue {
				requeue = wait
			}
			continue
		}
		st.AvailableReplicas++
	}
	st.ObservedGeneration = ms.Generation
	st.LabelSelector = selector.String()
	st.ErrorReason, st.ErrorMessage = nil, nil
	if equality.Semantic.DeepEqual(before.Status, ms.Status) {
		return ctrl.Result{RequeueAfter: requeue}, nil
	}
	if err := r.c.client.Status().Patch(ctx, ms, client.MergeFrom(before)); err != nil {
		return ctrl.Result{}, fmt.Errorf("update the status of MachineSet %s: %w", ms.Name, err)
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// nodeReady reports whether the Machine's Node is Ready, and since when.
func (r *machineSetReconciler) nodeReady(ctx context.Context, m *machinev1beta1.Machine) (bool, time.Time, error) {
	if m.Status.NodeRef == nil {
		return false, time.Time{}, nil
	}
	node := &corev1.Node{}
	if err := r.c.client.Get(ctx, client.ObjectKey{Name: m.Status.NodeRef.Name}, node); err != nil {
		return false, time.Time{}, client.IgnoreNotFound(err)
	}
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			return true, c.LastTransitionTime.Time, nil
		}
	}
	return false, time.Time{}, nil
}

// setStatusError reports a MachineSet the controller cannot act on.
func (r *machineSetReconciler) setStatusError(ctx context.Context, ms *machinev1beta1.MachineSet, msg string) error {
	before := ms.DeepCopy()
	ms.Status.ErrorReason = ptr.To(machinev1beta1.InvalidConfigurationMachineSetError)
	ms.Status.ErrorMessage = ptr.To(msg)
	ms.Status.ObservedGeneration = ms.Generation
	if equality.Semantic.DeepEqual(before.Status, ms.Status) {
		return nil
	}
	return r.c.client.Status().Patch(ctx, ms, client.MergeFrom(before))
}
