package machinesim

import (
	"context"
	"fmt"
	"slices"
	"strings"

	configv1 "github.com/openshift/api/config/v1"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/openwmco/wmco/pkg/platform"
)

// nodeReconciler plays the cloud controller manager's node controller (on
// platforms with external cloud providers) and the Machine API's nodelink
// controller.
type nodeReconciler struct{ c *Cloud }

func (r *nodeReconciler) setup(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("machinesim-node").
		For(&corev1.Node{}).
		// A Machine that gets its providerID or addresses may now match a
		// Node: look at every Node again (a simulator has few).
		Watches(&machinev1beta1.Machine{}, handler.EnqueueRequestsFromMapFunc(r.allNodes)).
		Complete(r)
}

func (r *nodeReconciler) allNodes(ctx context.Context, _ client.Object) []reconcile.Request {
	var nodes corev1.NodeList
	if err := r.c.client.List(ctx, &nodes); err != nil {
		return nil
	}
	out := make([]reconcile.Request, len(nodes.Items))
	for i, n := range nodes.Items {
		out[i] = reconcile.Request{NamespacedName: client.ObjectKey{Name: n.Name}}
	}
	return out
}

// Reconcile initialises and links one Node.
func (r *nodeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	node := &corev1.Node{}
	if err := r.c.client.Get(ctx, req.NamespacedName, node); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !node.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	var machines machinev1beta1.MachineList
	if err := r.c.client.List(ctx, &machines, client.InNamespace(r.c.opts.Namespace)); err != nil {
		return ctrl.Result{}, err
	}
	if r.c.profile.KubeletCloudProvider == platform.External && hasTaint(node, platform.UninitializedTaint) {
		done, err := r.initialize(ctx, node, machines.Items)
		if err != nil {
			return ctrl.Result{}, err
		}
		if !done {
			// The cloud controller manager retries Nodes it could not
			// initialise; nothing the Cloud watches says when a VM's
			// host name changes.
			return ctrl.Result{RequeueAfter: r.c.opts.RetryInterval}, nil
		}
	}
	return ctrl.Result{}, r.link(ctx, node, machines.Items)
}

// initialize finds the Node's Machine by the platform's rule and, when it
// may, sets the Node's providerID and addresses and removes the
// uninitialized taint. It reports whether the Node is initialised.
func (r *nodeReconciler) initialize(ctx context.Context, node *corev1.Node, machines []machinev1beta1.Machine) (bool, error) {
	m, why := r.machineFor(node, machines)
	var v *vm
	if m != nil {
		if v = r.c.vmOf(m); v == nil {
			m, why = nil, fmt.Sprintf("Machine %s has no VM", m.Name)
		}
	}
	if m != nil && r.c.profile.Type == configv1.VSpherePlatformType {
		// The vSphere cloud provider finds a VM by its guest's host name.
		if h := v.node.Host.Facts().Hostname; !strings.EqualFold(h, node.Name) {
			m, why = nil, fmt.Sprintf("no VM has the host name %s (the VM of Machine %s is named %s)", node.Name, v.machine, h)
		}
	}
	if m == nil {
		r.c.recordOnce("noinit/"+string(node.UID)+"/"+why, machineName(v), EventNodeNotInitialized, "%s: %s", node.Name, why)
		return false, nil
	}
	before := node.DeepCopy()
	node.Spec.ProviderID = v.providerID
	node.Spec.Taints = slices.DeleteFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.Key == platform.UninitializedTaint })
	if err := r.c.client.Patch(ctx, node, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return false, fmt.Errorf("initialise Node %s: %w", node.Name, err)
	}
	if len(node.Status.Addresses) == 0 {
		// A kubelet with --cloud-provider=external may leave them to the
		// cloud controller manager.
		before := node.DeepCopy()
		node.Status.Addresses = v.nodeAddresses
		if err := r.c.client.Status().Patch(ctx, node, client.MergeFrom(before)); err != nil {
			return false, fmt.Errorf("set the addresses of Node %s: %w", node.Name, err)
		}
	}
	r.c.record(m.Name, EventNodeInitialized, "%s: providerID %s", node.Name, v.providerID)
	return true, nil
}

func machineName(v *vm) string {
	if v == nil {
		return ""
	}
	return v.machine
}

// machineFor finds the Machine of an uninitialised Node by the platform's
// rule, or says why there is none.
func (r *nodeReconciler) machineFor(node *corev1.Node, machines []machinev1beta1.Machine) (*machinev1beta1.Machine, string) {
	for i := range machines {
		m := &machines[i]
		if !m.DeletionTimestamp.IsZero() && m.Status.NodeRef == nil {
			continue
		}
		switch r.c.profile.NodeName {
		case platform.NodeNameFromInternalDNS:
			for _, a := range m.Status.Addresses {
				if a.Type == corev1.NodeInternalDNS && strings.EqualFold(a.Address, node.Name) {
					return m, ""
				}
			}
		default:
			if m.Name == node.Name {
				return m, ""
			}
		}
	}
	if r.c.profile.NodeName == platform.NodeNameFromInternalDNS {
		return nil, "no instance has the private DNS name " + node.Name
	}
	return nil, "no VM is named " + node.Name
}

// link sets the Machine's status.nodeRef and phase Running, and the
// Node's Machine annotation, labels and taints, as nodelink does: by
// providerID, else by an internal IP address.
func (r *nodeReconciler) link(ctx context.Context, node *corev1.Node, machines []machinev1beta1.Machine) error {
	m := linkedMachine(node, machines)
	if m == nil {
		return nil
	}
	before := node.DeepCopy()
	if node.Annotations == nil {
		node.Annotations = map[string]string{}
	}
	node.Annotations[MachineAnnotation] = m.Namespace + "/" + m.Name
	for k, v := range m.Spec.Labels {
		if node.Labels == nil {
			node.Labels = map[string]string{}
		}
		node.Labels[k] = v
	}
	for _, t := range m.Spec.Taints {
		if !slices.ContainsFunc(node.Spec.Taints, func(x corev1.Taint) bool { return x.Key == t.Key && x.Effect == t.Effect }) {
			node.Spec.Taints = append(node.Spec.Taints, t)
		}
	}
	if !equality.Semantic.DeepEqual(before.ObjectMeta, node.ObjectMeta) || !equality.Semantic.DeepEqual(before.Spec, node.Spec) {
		if err := r.c.client.Patch(ctx, node, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("link Node %s: %w", node.Name, err)
		}
	}
	if ref := m.Status.NodeRef; ref != nil && ref.Name == node.Name && ref.UID == node.UID {
		return nil
	}
	mbefore := m.DeepCopy()
	m.Status.NodeRef = &corev1.ObjectReference{Kind: "Node", Name: node.Name, UID: node.UID}
	if ptr.Deref(m.Status.Phase, "") == machinev1beta1.PhaseProvisioned {
		m.Status.Phase = ptr.To(machinev1beta1.PhaseRunning)
	}
	if err := r.c.client.Status().Patch(ctx, m, client.MergeFrom(mbefore)); err != nil {
		return fmt.Errorf("set the nodeRef of Machine %s: %w", m.Name, err)
	}
	r.c.recordOnce("linked/"+string(m.UID)+"/"+string(node.UID), m.Name, EventNodeLinked, "%s", node.Name)
	return nil
}

// linkedMachine is the Node's Machine: the one with the Node's
// providerID, else one sharing an internal IP address with it.
func linkedMachine(node *corev1.Node, machines []machinev1beta1.Machine) *machinev1beta1.Machine {
	if node.Spec.ProviderID != "" {
		for i := range machines {
			if ptr.Deref(machines[i].Spec.ProviderID, "") == node.Spec.ProviderID {
				return &machines[i]
			}
		}
	}
	for _, na := range node.Status.Addresses {
		if na.Type != corev1.NodeInternalIP {
			continue
		}
		for i := range machines {
			for _, ma := range machines[i].Status.Addresses {
				if ma.Type == corev1.NodeInternalIP && ma.Address == na.Address {
					return &machines[i]
				}
			}
		}
	}
	return nil
}

func hasTaint(node *corev1.Node, key string) bool {
	return slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.Key == key })
}
