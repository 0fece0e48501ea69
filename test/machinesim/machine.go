package machinesim

import (
	"context"
	"fmt"
	"slices"
	"strings"

	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// InstanceStateAnnotation is the annotation in which Machine API
// providers report the instance's state.
const InstanceStateAnnotation = "machine.openshift.io/instance-state"

// ExcludeNodeDrainingAnnotation on a Machine makes its deletion skip the
// drain, as in the Machine API.
const ExcludeNodeDrainingAnnotation = "machine.openshift.io/exclude-node-draining"

// machineReconciler is the Machine actuator.
type machineReconciler struct{ c *Cloud }

func (r *machineReconciler) setup(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("machinesim-machine").
		For(&machinev1beta1.Machine{}).
		// A userData Secret that appears brings its Machines back.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.machinesOfSecret)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(r)
}

// machinesOfSecret maps a Secret to the Machines that name it as their
// userData Secret and have no VM yet.
func (r *machineReconciler) machinesOfSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var list machinev1beta1.MachineList
	if err := r.c.client.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		m := &list.Items[i]
		if name, err := userDataSecretName(m); err == nil && name == o.GetName() && r.c.vmOf(m) == nil {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(m)})
		}
	}
	return out
}

// Reconcile provisions or deletes one Machine.
func (r *machineReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	// The cache holds the Cloud's namespace only.
	m := &machinev1beta1.Machine{}
	if err := r.c.client.Get(ctx, req.NamespacedName, m); err != nil {
		if apierrors.IsNotFound(err) {
			r.forgetOrphan(req.Name, "")
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// A VM of an earlier Machine of the same name is an orphan.
	r.forgetOrphan(m.Name, m.UID)
	if !m.DeletionTimestamp.IsZero() {
		return r.delete(ctx, m)
	}
	if !controllerutil.ContainsFinalizer(m, machinev1beta1.MachineFinalizer) {
		patch := client.MergeFrom(m.DeepCopy())
		controllerutil.AddFinalizer(m, machinev1beta1.MachineFinalizer)
		// No requeue: the update is an event of the Machine watch.
		return ctrl.Result{}, r.c.client.Patch(ctx, m, patch)
	}
	return r.provision(ctx, m)
}

// forgetOrphan destroys the VM kept under name unless it belongs to the
// Machine uid.
func (r *machineReconciler) forgetOrphan(name string, uid types.UID) {
	r.c.mu.Lock()
	v := r.c.vms[name]
	r.c.mu.Unlock()
	if v != nil && v.uid != uid {
		_ = r.c.destroy(v)
		r.c.record(name, EventHostDestroyed, "the VM's Machine is gone")
	}
}

// provision boots the Machine's VM if it has none and reports it.
func (r *machineReconciler) provision(ctx context.Context, m *machinev1beta1.Machine) (ctrl.Result, error) {
	v := r.c.vmOf(m)
	if v == nil && (ptr.Deref(m.Spec.ProviderID, "") != "" || len(m.Status.Addresses) > 0) {
		// Provisioned by a Cloud before this one: its instance is gone.
		r.c.recordOnce("lost/"+string(m.UID), m.Name, EventInstanceLost, "no VM for providerID %q, addresses %v",
			ptr.Deref(m.Spec.ProviderID, ""), m.Status.Addresses)
		return ctrl.Result{}, r.setStatus(ctx, m, machinev1beta1.PhaseFailed, func(s *machinev1beta1.MachineStatus) {
			s.ErrorReason = ptr.To(machinev1beta1.CreateMachineError)
			s.ErrorMessage = ptr.To("Can't find created instance.")
		})
	}
	if v == nil {
		userData, err := r.userData(ctx, m)
		if err != nil {
			r.c.recordOnce("userdata/"+string(m.UID)+"/"+err.Error(), m.Name, EventUserDataMissing, "%v", err)
			if serr := r.setStatus(ctx, m, machinev1beta1.PhaseProvisioning, func(s *machinev1beta1.MachineStatus) {
				s.ErrorMessage = ptr.To(err.Error())
			}); serr != nil {
				return ctrl.Result{}, serr
			}
			// The Secret's creation brings the Machine back too.
			return ctrl.Result{RequeueAfter: r.c.opts.RetryInterval}, nil
		}
		if err := r.setStatus(ctx, m, machinev1beta1.PhaseProvisioning, func(s *machinev1beta1.MachineStatus) { s.ErrorMessage = nil }); err != nil {
			return ctrl.Result{}, err
		}
		if v, err = r.c.boot(ctx, m, userData); err != nil {
			return ctrl.Result{}, err
		}
	}
	if ptr.Deref(m.Spec.ProviderID, "") != v.providerID || m.Annotations[InstanceStateAnnotation] != "running" {
		patch := client.MergeFrom(m.DeepCopy())
		if v.providerID != "" {
			m.Spec.ProviderID = ptr.To(v.providerID)
		}
		metav1.SetMetaDataAnnotation(&m.ObjectMeta, InstanceStateAnnotation, "running")
		if err := r.c.client.Patch(ctx, m, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("set the providerID of Machine %s: %w", m.Name, err)
		}
	}
	phase := machinev1beta1.PhaseProvisioned
	if m.Status.NodeRef != nil {
		phase = machinev1beta1.PhaseRunning
	}
	return ctrl.Result{}, r.setStatus(ctx, m, phase, func(s *machinev1beta1.MachineStatus) {
		s.Addresses = v.addresses
		s.ErrorMessage, s.ErrorReason = nil, nil
	})
}

// userData reads the Machine's first-boot script.
func (r *machineReconciler) userData(ctx context.Context, m *machinev1beta1.Machine) ([]byte, error) {
	name, err := userDataSecretName(m)
	if err != nil {
		return nil, err
	}
	var s corev1.Secret
	if err := r.c.reader.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("userData Secret %s/%s not found", m.Namespace, name)
		}
		return nil, err
	}
	data, ok := s.Data[userDataKey]
	if !ok {
		return nil, fmt.Errorf("userData Secret %s/%s has no key %s", m.Namespace, name, userDataKey)
	}
	return data, nil
}

// setStatus sets the phase and whatever change does, and patches the
// status if that changed anything.
func (r *machineReconciler) setStatus(ctx context.Context, m *machinev1beta1.Machine, phase string, change func(*machinev1beta1.MachineStatus)) error {
	before := m.DeepCopy()
	m.Status.Phase = ptr.To(phase)
	if change != nil {
		change(&m.Status)
	}
	if statusEqual(before.Status, m.Status) {
		return nil
	}
	m.Status.LastUpdated = ptr.To(metav1.Now())
	if err := r.c.client.Status().Patch(ctx, m, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("update the status of Machine %s: %w", m.Name, err)
	}
	return nil
}

func statusEqual(a, b machinev1beta1.MachineStatus) bool {
	a.LastUpdated, b.LastUpdated = nil, nil
	return equality.Semantic.DeepEqual(a, b)
}

// delete runs the Machine API's deletion: preDrain hooks, drain,
// preTerminate hooks, destroy the VM, delete the Node, release.
func (r *machineReconciler) delete(ctx context.Context, m *machinev1beta1.Machine) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(m, machinev1beta1.MachineFinalizer) {
		return ctrl.Result{}, nil
	}
	uid := string(m.UID)
	if r.c.seenOnce("released/" + uid) {
		// A stale copy of a Machine already released.
		return ctrl.Result{}, nil
	}
	r.c.recordOnce("deleting/"+uid, m.Name, EventDeletionStarted, "")
	if err := r.setStatus(ctx, m, machinev1beta1.PhaseDeleting, nil); err != nil {
		return ctrl.Result{}, err
	}
	if held, err := r.holdForHooks(ctx, m, "preDrain", m.Spec.LifecycleHooks.PreDrain, machinev1beta1.MachineDrainable); held || err != nil {
		// No requeue: removing a hook is an update of the Machine.
		return ctrl.Result{}, err
	}
	node, err := r.nodeOf(ctx, m)
	if err != nil {
		return ctrl.Result{}, err
	}
	if _, skip := m.Annotations[ExcludeNodeDrainingAnnotation]; skip && node != nil {
		r.c.recordOnce("drained/"+uid, m.Name, EventNodeDrained, "%s: skipped (%s)", node.Name, ExcludeNodeDrainingAnnotation)
	}
	if node != nil && !r.c.seenOnce("drained/"+uid) {
		left, err := r.drain(ctx, node)
		if err != nil {
			return ctrl.Result{}, err
		}
		if len(left) > 0 {
			r.c.log.Info("Waiting for pods to leave the node", "machine", m.Name, "node", node.Name, "pods", left)
			return ctrl.Result{RequeueAfter: r.c.opts.RetryInterval}, nil
		}
		r.c.recordOnce("drained/"+uid, m.Name, EventNodeDrained, "%s", node.Name)
	}
	if held, err := r.holdForHooks(ctx, m, "preTerminate", m.Spec.LifecycleHooks.PreTerminate, machinev1beta1.MachineTerminable); held || err != nil {
		return ctrl.Result{}, err
	}
	if v := r.c.vmOf(m); v != nil {
		snap := v.takeSnapshot(ctx)
		r.c.mu.Lock()
		r.c.snapshots[m.Name] = snap
		r.c.mu.Unlock()
		r.c.record(m.Name, EventHostSnapshot, "%d service(s), %d file(s) under %s, %d file(s) added since first boot",
			len(snap.Services), len(snap.Files), strings.Join(snapshotRoots, " and "), len(snap.Added))
		if err := r.c.destroy(v); err != nil {
			r.c.log.Error(err, "VM did not power off cleanly", "machine", m.Name)
		}
		r.c.record(m.Name, EventHostDestroyed, "%s", v.ip)
	}
	// The Node again: it may have registered since.
	if !r.c.seenOnce("nodegone/" + uid) {
		if node, err = r.nodeOf(ctx, m); err != nil {
			return ctrl.Result{}, err
		}
		if node != nil {
			err := r.c.client.Delete(ctx, node, client.Preconditions{UID: &node.UID})
			if err != nil && !apierrors.IsNotFound(err) {
				return ctrl.Result{}, fmt.Errorf("delete Node %s of Machine %s: %w", node.Name, m.Name, err)
			}
			r.c.recordOnce("nodegone/"+uid, m.Name, EventNodeDeletedByCloud, "%s", node.Name)
		} else {
			r.c.recordOnce("nodegone/"+uid, m.Name, EventNodeAlreadyGone, "")
		}
	}
	// Recorded first: whoever sees the Machine gone finds every event of
	// its deletion recorded.
	r.c.recordOnce("releasing/"+uid, m.Name, EventMachineReleased, "")
	patch := client.MergeFrom(m.DeepCopy())
	controllerutil.RemoveFinalizer(m, machinev1beta1.MachineFinalizer)
	if err := r.c.client.Patch(ctx, m, patch); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.c.mu.Lock()
	r.c.seen["released/"+uid] = true
	r.c.mu.Unlock()
	return ctrl.Result{}, nil
}

// holdForHooks reports whether hooks of the stage hold the deletion,
// recording the hold and its end and setting the condition as the Machine
// API does.
func (r *machineReconciler) holdForHooks(ctx context.Context, m *machinev1beta1.Machine, stage string, hooks []machinev1beta1.LifecycleHook, cond machinev1beta1.ConditionType) (bool, error) {
	key := "held/" + string(m.UID) + "/" + stage
	if len(hooks) > 0 {
		names := make([]string, len(hooks))
		for i, h := range hooks {
			names[i] = h.Name + " (" + h.Owner + ")"
		}
		r.c.recordOnce(key+"/"+strings.Join(names, ","), m.Name, EventHeldByHooks, "%s: %s", stage, strings.Join(names, ", "))
		r.c.mu.Lock()
		r.c.seen[key] = true
		r.c.mu.Unlock()
		return true, r.setStatus(ctx, m, machinev1beta1.PhaseDeleting, func(s *machinev1beta1.MachineStatus) {
			setCondition(s, machinev1beta1.Condition{Type: cond, Status: corev1.ConditionFalse, Reason: machinev1beta1.MachineHookPresent,
				Severity: machinev1beta1.ConditionSeverityWarning, Message: "Waiting for " + stage + " completion"})
		})
	}
	if r.c.seenOnce(key) {
		r.c.recordOnce(key+"/cleared", m.Name, EventHooksCleared, "%s", stage)
	}
	return false, r.setStatus(ctx, m, machinev1beta1.PhaseDeleting, func(s *machinev1beta1.MachineStatus) {
		setCondition(s, machinev1beta1.Condition{Type: cond, Status: corev1.ConditionTrue})
	})
}

// setCondition sets c in s, keeping the transition time when the status
// does not change.
func setCondition(s *machinev1beta1.MachineStatus, c machinev1beta1.Condition) {
	for i := range s.Conditions {
		if s.Conditions[i].Type != c.Type {
			continue
		}
		if s.Conditions[i].Status == c.Status {
			c.LastTransitionTime = s.Conditions[i].LastTransitionTime
		} else {
			c.LastTransitionTime = metav1.Now()
		}
		s.Conditions[i] = c
		return
	}
	c.LastTransitionTime = metav1.Now()
	s.Conditions = append(s.Conditions, c)
}

// nodeOf returns the Machine's Node: the one status.nodeRef names, else
// one with the Machine's providerID; nil when there is none.
func (r *machineReconciler) nodeOf(ctx context.Context, m *machinev1beta1.Machine) (*corev1.Node, error) {
	if m.Status.NodeRef != nil && m.Status.NodeRef.Name != "" {
		node := &corev1.Node{}
		err := r.c.reader.Get(ctx, client.ObjectKey{Name: m.Status.NodeRef.Name}, node)
		if err == nil {
			return node, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
	}
	id := ptr.Deref(m.Spec.ProviderID, "")
	if id == "" {
		return nil, nil
	}
	var nodes corev1.NodeList
	if err := r.c.reader.List(ctx, &nodes); err != nil {
		return nil, err
	}
	for i := range nodes.Items {
		if nodes.Items[i].Spec.ProviderID == id {
			return &nodes.Items[i], nil
		}
	}
	return nil, nil
}

// drain cordons the Node and evicts its pods (but DaemonSet and mirror
// pods) through the Eviction API; it returns the pods left.
func (r *machineReconciler) drain(ctx context.Context, node *corev1.Node) ([]string, error) {
	if !node.Spec.Unschedulable {
		patch := client.MergeFrom(node.DeepCopy())
		node.Spec.Unschedulable = true
		if err := r.c.client.Patch(ctx, node, patch); err != nil {
			return nil, fmt.Errorf("cordon Node %s: %w", node.Name, err)
		}
	}
	pods, err := r.c.cs.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node.Name).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("list the pods of Node %s: %w", node.Name, err)
	}
	var left []string
	for i := range pods.Items {
		p := &pods.Items[i]
		if _, mirror := p.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
			continue
		}
		if ref := metav1.GetControllerOf(p); ref != nil && ref.Kind == "DaemonSet" {
			continue
		}
		left = append(left, p.Namespace+"/"+p.Name)
		if p.DeletionTimestamp != nil {
			continue
		}
		err := r.c.cs.PolicyV1().Evictions(p.Namespace).Evict(ctx, &policyv1.Eviction{
			ObjectMeta:    metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
			DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsTooManyRequests(err) && !apierrors.IsConflict(err) {
			return nil, fmt.Errorf("evict pod %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	slices.Sort(left)
	return left, nil
}
