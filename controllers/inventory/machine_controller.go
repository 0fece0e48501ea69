package inventory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	configv1 "github.com/openshift/api/config/v1"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/hostaddr"
	"github.com/openwmco/wmco/pkg/platform"
)

const (
	// DefaultMachineAccessTimeout is how long the host of a Machine with an
	// address may refuse or ignore the operator before the Machine says so
	// (condition WindowsHostAccessible=False and a Warning Event).
	DefaultMachineAccessTimeout = 10 * time.Minute

	// machineAPINamespace is where the machine-api keeps Machines.
	machineAPINamespace = "openshift-machine-api"
	// machineInstancePrefix starts the name of a Machine's WindowsInstance.
	machineInstancePrefix = "machine-"
	// machineInstanceNameMax keeps those names usable as label values
	// (wmco.io/instance), which hold at most 63 characters.
	machineInstanceNameMax = 63
	// machineAddressTakenRequeue is how soon a Machine whose address
	// another WindowsInstance holds is looked at again.
	machineAddressTakenRequeue = time.Minute
	// machineFieldOwner is the field manager of the operator's
	// server-side applies to Machines: its lifecycle hook and its
	// conditions, nothing else.
	machineFieldOwner = "wmco-machine-controller"
)

// MachineDeconfigureHook is the preDrain lifecycle hook the operator puts
// on every Windows Machine it manages. The Machine API neither drains nor
// terminates a Machine while a preDrain hook remains, so when the Machine
// is deleted (a MachineSet scaled down) the operator drains the Node,
// cleans the host and deletes the Node first, then removes the hook and
// the VM goes.
var MachineDeconfigureHook = machinev1beta1.LifecycleHook{Name: "wmco.io/DeconfigureWindowsHost", Owner: "wmco.io/machine-controller"}

// Conditions the operator sets on Windows Machines (status.conditions,
// server-side applied, so the Machine API's own conditions are left alone).
const (
	// MachineConditionAccessible says whether the operator can log in to
	// the Machine's host: False once the host has refused or ignored it for
	// AccessTimeout, or when the Machine cannot become a host at all (a
	// Node name the platform cannot use).
	MachineConditionAccessible machinev1beta1.ConditionType = "WindowsHostAccessible"
	// MachineConditionNodeReady mirrors the WindowsInstance's Ready.
	MachineConditionNodeReady machinev1beta1.ConditionType = "WindowsNodeReady"
)

// Events the Machine controller records on Machines.
const (
	EventMachineInstanceCreated = "WindowsInstanceCreated"
	EventMachineNotAccessible   = "WindowsHostNotAccessible"
	EventMachineInvalidName     = "InvalidNodeName"
	EventMachineNodeReady       = "WindowsNodeReady"
	EventMachineDeconfiguring   = "DeconfiguringWindowsHost"
	EventMachineDeconfigured    = "WindowsHostDeconfigured"
	EventMachineHostAbandoned   = "WindowsHostAbandoned"
)

// MachineReconciler gives every Windows Machine (machine.openshift.io/v1beta1,
// labelled machine.openshift.io/os-id=Windows and not
// windowsmachineconfig.openshift.io/ignore=true) a WindowsInstance labelled
// wmco.io/source=machine, once the Machine reports an address. How the
// Machine maps to the instance (address, user, Node name, computer name,
// kubelet cloud provider) is the platform's profile (package platform).
//
// It holds the Machine's deletion with MachineDeconfigureHook until the
// instance (whose finalizer drains the Node, cleans the host and deletes
// the Node) is gone. It deletes the instance when the Machine goes away, is
// being deleted, or stops being a Windows Machine the operator may manage.
// It reports on the Machine: conditions, and Events. It only translates:
// it never touches a host.
//
// It needs the Machine API: main calls SetupWithManager only when
// cluster.Info.MachineAPI is true (OpenShift with the machine-api), since
// the watch on Machines cannot start where they are not served.
type MachineReconciler struct {
	// Client reads Machines and WindowsInstances from the manager's cache,
	// writes WindowsInstances and applies the hook and conditions to
	// Machines.
	Client client.Client
	// Recorder records Events on Machines, e.g.
	// mgr.GetEventRecorder("wmco-machine-controller").
	Recorder events.EventRecorder
	// Platform is the cluster's platform (the Infrastructure object's
	// status); "" is None.
	Platform configv1.PlatformType
	// Username to log in as on Machine hosts; the platform's (see
	// platform.Profile.Username) when empty.
	Username string
	// Port is the SSH port of Machine hosts; 0 means the API's default,
	// 22.
	Port int32
	// AccessTimeout is how long a host may refuse or ignore the operator
	// before its Machine says so; DefaultMachineAccessTimeout when 0.
	AccessTimeout time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	profile platform.Profile
}

// machineScope is the state of one Reconcile.
type machineScope struct {
	m   *machinev1beta1.Machine
	log logr.Logger
	// owner is "namespace/name" of the Machine; name its instance's name.
	owner, name string
	// wi is the Machine's instance, nil when it has none.
	wi *wmcov1.WindowsInstance
	// conditions are what the Machine's operator-owned conditions should
	// say; applied at the end of the Reconcile when they changed.
	conditions []machinev1beta1.Condition
}

// +kubebuilder:rbac:groups=machine.openshift.io,resources=machines,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=machine.openshift.io,resources=machines/status,verbs=patch
// +kubebuilder:rbac:groups=config.openshift.io,resources=infrastructures,verbs=get
// +kubebuilder:rbac:groups=wmco.io,resources=windowsinstances,verbs=get;list;watch;create;update;patch;delete

// Reconcile makes the WindowsInstance, the hook and the conditions of one
// Machine match it. Requests come from Machine events and from events of
// machine-sourced WindowsInstances (mapped through their wmco.io/machine
// annotation), so an instance whose Machine no longer exists is deleted
// when the manager starts and on every resync.
func (r *MachineReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	m := &machinev1beta1.Machine{}
	if err := r.Client.Get(ctx, req.NamespacedName, m); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("get Machine %s: %w", req.NamespacedName, err)
		}
		return ctrl.Result{}, r.deleteInstance(ctx, req.NamespacedName, "the Machine no longer exists")
	}
	s := &machineScope{
		m: m, log: ctrl.LoggerFrom(ctx).WithValues("machine", klog.KObj(m)),
		owner: m.Namespace + "/" + m.Name, name: MachineInstanceName(m.Namespace, m.Name),
	}
	wi := &wmcov1.WindowsInstance{}
	switch err := r.Client.Get(ctx, client.ObjectKey{Name: s.name}, wi); {
	case err == nil:
		s.wi = wi
	case !apierrors.IsNotFound(err):
		return ctrl.Result{}, fmt.Errorf("get WindowsInstance %s: %w", s.name, err)
	}
	for _, phase := range []func(context.Context, *machineScope) (ctrl.Result, bool, error){
		r.reconcileUnmanaged, r.reconcileDeletion, r.reconcileHook, r.reconcileInstance, r.reconcileAccess,
	} {
		res, done, err := phase(ctx, s)
		if err != nil || done || !res.IsZero() {
			if cerr := r.applyConditions(ctx, s); cerr != nil && err == nil {
				err = cerr
			}
			return core.QuietCacheLag(ctx, res, err)
		}
	}
	return core.QuietCacheLag(ctx, ctrl.Result{}, r.applyConditions(ctx, s))
}

// reconcileUnmanaged removes the instance and then the hook of a Machine
// the operator must leave alone. The hook stays until the instance is gone
// (its host drained and cleaned, its Node deleted), as on the Machine's
// deletion: deleted meanwhile, the Machine would otherwise have its VM
// removed under the cleanup.
func (r *MachineReconciler) reconcileUnmanaged(ctx context.Context, s *machineScope) (ctrl.Result, bool, error) {
	why := machineUnmanagedReason(s.m)
	if why == "" {
		return ctrl.Result{}, false, nil
	}
	if s.wi != nil && ownedByMachine(s.wi, s.owner) {
		if err := r.deleteInstance(ctx, client.ObjectKeyFromObject(s.m), why); err != nil {
			return ctrl.Result{}, true, err
		}
		// No requeue: the instance's deletion maps back to the Machine.
		s.log.V(1).Info("Waiting for the WindowsInstance to be deconfigured before removing the hook", "windowsInstance", s.wi.Name)
		return ctrl.Result{}, true, nil
	}
	return ctrl.Result{}, true, r.setHook(ctx, s, false)
}

// machineUnmanagedReason says why a Machine must have no WindowsInstance,
// or "" when it must have one (or is being deleted: see
// reconcileDeletion).
func machineUnmanagedReason(m *machinev1beta1.Machine) string {
	switch {
	case m.Labels[wmcov1.MachineOSIDLabel] != "Windows":
		return fmt.Sprintf("the Machine is not labelled %s=Windows", wmcov1.MachineOSIDLabel)
	case m.Labels[wmcov1.MachineIgnoreLabel] == "true":
		return fmt.Sprintf("the Machine is labelled %s=true", wmcov1.MachineIgnoreLabel)
	}
	return ""
}

// reconcileDeletion deletes the instance of a Machine being deleted and,
// once it is gone (the host cleaned, the Node deleted), removes the hook so
// the Machine API drains and terminates the VM.
func (r *MachineReconciler) reconcileDeletion(ctx context.Context, s *machineScope) (ctrl.Result, bool, error) {
	if s.m.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, false, nil
	}
	if s.wi != nil && ownedByMachine(s.wi, s.owner) {
		if s.wi.DeletionTimestamp.IsZero() {
			if err := r.deleteInstance(ctx, client.ObjectKeyFromObject(s.m), "the Machine is being deleted"); err != nil {
				return ctrl.Result{}, true, err
			}
			r.Recorder.Eventf(s.m, s.wi, corev1.EventTypeNormal, EventMachineDeconfiguring, "Deconfigure",
				"Draining Node %q and cleaning the Windows host (WindowsInstance %s) before the VM is removed", s.wi.Status.NodeName, s.wi.Name)
		}
		res, err := r.abandonUnreachableHost(ctx, s)
		if err != nil {
			return ctrl.Result{}, true, err
		}
		// The instance's deletion maps back to the Machine.
		s.log.V(1).Info("Waiting for the WindowsInstance to be deconfigured", "windowsInstance", s.wi.Name)
		return res, true, nil
	}
	if hasHook(s.m) {
		if err := r.setHook(ctx, s, false); err != nil {
			return ctrl.Result{}, true, err
		}
		s.log.Info("Host deconfigured; released the Machine's deletion")
		r.Recorder.Eventf(s.m, nil, corev1.EventTypeNormal, EventMachineDeconfigured, "Deconfigure",
			"The Windows host is clean and its Node deleted; removed lifecycle hook %s", MachineDeconfigureHook.Name)
	}
	return ctrl.Result{}, true, nil
}

// abandonUnreachableHost gives up the host of a Machine being deleted,
// through wmcov1.AnnotationAbandonHost on its instance, once the host has
// not let the operator in for the access timeout: the VM is removed
// anyway, and an instance waiting to clean a host it cannot reach would
// hold the Machine's deletion, and a MachineSet's scale-down, for ever.
// Before then it returns when to look again.
func (r *MachineReconciler) abandonUnreachableHost(ctx context.Context, s *machineScope) (ctrl.Result, error) {
	wi := s.wi
	if wi.DeletionTimestamp.IsZero() || wi.Annotations[wmcov1.AnnotationAbandonHost] != "" {
		return ctrl.Result{}, nil
	}
	since, out := accessLostSince(wi)
	if !out {
		// A change of Reachable maps back to the Machine.
		return ctrl.Result{}, nil
	}
	if left := r.AccessTimeout - r.now().Sub(since); left > 0 {
		return ctrl.Result{RequeueAfter: left + time.Second}, nil
	}
	why := fmt.Sprintf("the Machine %s/%s is being deleted and the host has not let the operator in since %s",
		s.m.Namespace, s.m.Name, since.UTC().Format(time.RFC3339))
	patch := client.MergeFrom(wi.DeepCopy())
	if wi.Annotations == nil {
		wi.Annotations = map[string]string{}
	}
	wi.Annotations[wmcov1.AnnotationAbandonHost] = why
	if err := r.Client.Patch(ctx, wi, patch); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("annotate WindowsInstance %s to give its host up: %w", wi.Name, err)
	}
	reason := "NotConnected"
	if c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionReachable); c != nil {
		reason = c.Reason
	}
	s.log.Info("Giving up the unreachable host of a Machine being deleted", "windowsInstance", wi.Name, "since", since, "reason", reason)
	r.Recorder.Eventf(s.m, wi, corev1.EventTypeWarning, EventMachineHostAbandoned, "Deconfigure",
		"The host (WindowsInstance %s) has not let the operator in for %s (%s): its Node is drained and deleted and the VM removed without cleaning the host",
		wi.Name, r.AccessTimeout, reason)
	return ctrl.Result{}, nil
}

// accessLostSince says whether the instance's host does not let the
// operator in (its Reachable condition is not True) and since when: the
// condition's last transition, or the instance's creation if later (a
// host never reached).
func accessLostSince(wi *wmcov1.WindowsInstance) (time.Time, bool) {
	reach := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionReachable)
	if reach != nil && reach.Status == metav1.ConditionTrue {
		return time.Time{}, false
	}
	since := wi.CreationTimestamp.Time
	if reach != nil && reach.LastTransitionTime.After(since) {
		since = reach.LastTransitionTime.Time
	}
	return since, true
}

// reconcileHook puts MachineDeconfigureHook on the Machine.
func (r *MachineReconciler) reconcileHook(ctx context.Context, s *machineScope) (ctrl.Result, bool, error) {
	if hasHook(s.m) {
		return ctrl.Result{}, false, nil
	}
	s.log.Info("Adding lifecycle hook", "hook", MachineDeconfigureHook.Name)
	return ctrl.Result{}, false, r.setHook(ctx, s, true)
}

// hasHook reports whether the Machine carries MachineDeconfigureHook.
func hasHook(m *machinev1beta1.Machine) bool {
	for _, h := range m.Spec.LifecycleHooks.PreDrain {
		if h.Name == MachineDeconfigureHook.Name {
			return true
		}
	}
	return false
}

// setHook adds (on) or removes the operator's preDrain hook with a merge
// patch under an optimistic lock, so a hook someone else adds meanwhile is
// not lost (the patch then conflicts and the Reconcile is retried).
func (r *MachineReconciler) setHook(ctx context.Context, s *machineScope, on bool) error {
	if on == hasHook(s.m) {
		return nil
	}
	before := s.m.DeepCopy()
	hooks := slices.DeleteFunc(slices.Clone(s.m.Spec.LifecycleHooks.PreDrain), func(h machinev1beta1.LifecycleHook) bool {
		return h.Name == MachineDeconfigureHook.Name
	})
	if on {
		hooks = append(hooks, MachineDeconfigureHook)
	}
	s.m.Spec.LifecycleHooks.PreDrain = hooks
	if err := r.Client.Patch(ctx, s.m, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("set lifecycle hook %s on Machine %s: %w", MachineDeconfigureHook.Name, s.owner, err)
	}
	return nil
}

// machineApplyObject is the skeleton of a server-side apply to m.
func machineApplyObject(m *machinev1beta1.Machine) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(machinev1beta1.GroupVersion.String())
	u.SetKind("Machine")
	u.SetNamespace(m.Namespace)
	u.SetName(m.Name)
	return u
}

// reconcileInstance creates or updates the Machine's instance from its
// status and the platform's profile.
func (r *MachineReconciler) reconcileInstance(ctx context.Context, s *machineScope) (ctrl.Result, bool, error) {
	addr, refused := machineAddress(s.m.Status.Addresses, r.profile.AddressTypes)
	if addr == "" && len(refused) > 0 {
		// No requeue: a status update with another address is an event of
		// the Machine watch. An instance made earlier stays: the
		// WindowsInstance controller refuses to connect to its address.
		s.log.Info("Machine has no internal address the operator may connect to; it gets no WindowsInstance", "refused", refused)
		return ctrl.Result{}, true, nil
	}
	if addr == "" {
		// No requeue: the Machine's status update with its address is an
		// event of the Machine watch.
		s.log.Info("Waiting for the Machine's internal address")
		return ctrl.Result{}, true, nil
	}
	nodeName, err := r.profile.MachineNodeName(s.m.Name, s.m.Status.Addresses)
	if err != nil {
		if errors.Is(err, platform.ErrNodeNamePending) {
			s.log.Info("Waiting for the Machine's address the Node is named after", "error", err.Error())
			return ctrl.Result{}, true, nil
		}
		// A name the platform cannot use never becomes usable: say so on
		// the Machine, once.
		msg := err.Error()
		if r.setCondition(s, MachineConditionAccessible, corev1.ConditionFalse, EventMachineInvalidName, msg) {
			r.Recorder.Eventf(s.m, nil, corev1.EventTypeWarning, EventMachineInvalidName, "CreateInstance", "%s", msg)
		}
		return ctrl.Result{}, true, nil
	}
	return r.applyInstance(ctx, s, addr, nodeName)
}

// applyInstance creates or updates the WindowsInstance of the Machine.
func (r *MachineReconciler) applyInstance(ctx context.Context, s *machineScope, addr, nodeName string) (ctrl.Result, bool, error) {
	log := s.log.WithValues("windowsInstance", klog.KRef("", s.name))
	if s.wi == nil {
		holder, err := r.addressHolder(ctx, addr)
		if err != nil {
			return ctrl.Result{}, true, err
		}
		if holder != "" {
			// One host, one WindowsInstance. The holder's deletion is not
			// watched here (it may be anyone's), hence the requeue.
			log.Info("Another WindowsInstance already has the Machine's address; waiting for it to go",
				"address", addr, "holder", holder)
			return ctrl.Result{RequeueAfter: machineAddressTakenRequeue}, true, nil
		}
		wi := &wmcov1.WindowsInstance{}
		wi.Name = s.name
		wi.Labels = map[string]string{wmcov1.LabelSource: wmcov1.SourceMachine}
		wi.Annotations = map[string]string{wmcov1.AnnotationMachine: s.owner}
		r.setSpec(&wi.Spec, addr, nodeName)
		log.Info("Creating WindowsInstance", "address", addr, "nodeName", nodeName, "platform", r.profile.Type)
		if err := r.Client.Create(ctx, wi); err != nil {
			// AlreadyExists means the cache lags: Reconcile retries
			// quietly (core.QuietCacheLag).
			return ctrl.Result{}, true, fmt.Errorf("create WindowsInstance %s for Machine %s: %w", s.name, s.owner, err)
		}
		r.Recorder.Eventf(s.m, wi, corev1.EventTypeNormal, EventMachineInstanceCreated, "CreateInstance",
			"Created WindowsInstance %s for host %s (platform %s, user %s)", wi.Name, addr, r.profile.Type, wi.Spec.Username)
		s.wi = wi
		return ctrl.Result{}, false, nil
	}
	wi := s.wi
	if !ownedByMachine(wi, s.owner) {
		log.Info("WindowsInstance exists and does not belong to this Machine; leaving it alone",
			"source", wi.Labels[wmcov1.LabelSource], "annotation", wi.Annotations[wmcov1.AnnotationMachine])
		return ctrl.Result{}, true, nil
	}
	if !wi.DeletionTimestamp.IsZero() {
		// No requeue: the instance's delete event maps back to the Machine.
		log.Info("WindowsInstance is being deleted; it is created again once it is gone")
		return ctrl.Result{}, true, nil
	}
	before := wi.DeepCopy()
	r.setSpec(&wi.Spec, addr, nodeName)
	if equality.Semantic.DeepEqual(before.Spec, wi.Spec) {
		return ctrl.Result{}, false, nil
	}
	log.Info("Updating WindowsInstance", "address", addr, "nodeName", nodeName)
	// A merge patch of the Machine's fields only; status is left alone.
	if err := r.Client.Patch(ctx, wi, client.MergeFrom(before)); err != nil {
		return ctrl.Result{}, true, fmt.Errorf("update WindowsInstance %s for Machine %s: %w", s.name, s.owner, err)
	}
	return ctrl.Result{}, false, nil
}

// reconcileAccess reports on the Machine whether its host lets the
// operator in and whether its Node is Ready. A host that refused or
// ignored the operator for AccessTimeout since its instance was created
// (typically a VM that did not run the windows-user-data Secret, or whose
// key is not the operator's), or since it last let the operator in (a
// reboot outlasting the bound, a host gone), turns WindowsHostAccessible
// False with a Warning Event. Until then the condition stays as it was:
// each status patch states every condition the operator owns, and one
// left out would be removed.
func (r *MachineReconciler) reconcileAccess(_ context.Context, s *machineScope) (ctrl.Result, bool, error) {
	wi := s.wi
	if wi == nil {
		return ctrl.Result{}, true, nil
	}
	reach := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionReachable)
	var res ctrl.Result
	since, out := accessLostSince(wi)
	switch {
	case !out:
		r.setCondition(s, MachineConditionAccessible, corev1.ConditionTrue, reach.Reason, "the operator logs in to the host as "+wi.Spec.Username)
	default:
		old := findMachineCondition(s.m.Status.Conditions, MachineConditionAccessible)
		// The key fingerprint is recorded at the first login.
		wasIn := wi.Status.AuthorizedKeyFingerprint != ""
		if left := r.AccessTimeout - r.now().Sub(since); left > 0 {
			if old != nil {
				s.conditions = append(s.conditions, *old)
			}
			// Nothing to watch for the time passing: look again then.
			res.RequeueAfter = left + time.Second
			break
		}
		reason, detail := "NotConnected", "the operator has not connected yet"
		if reach != nil {
			reason, detail = reach.Reason, reach.Message
		}
		msg := fmt.Sprintf("the host at %s has not let the operator log in as %s within %s: %s. New VMs authorize the operator's key from the %s Secret at first boot: check that the MachineSet's providerSpec names it and that the image runs it",
			wi.Spec.Address, wi.Spec.Username, r.AccessTimeout, detail, "windows-user-data")
		if wasIn {
			msg = fmt.Sprintf("the host at %s has not let the operator log in as %s for %s, since %s: %s",
				wi.Spec.Address, wi.Spec.Username, r.AccessTimeout, since.UTC().Format(time.RFC3339), detail)
		}
		if r.setCondition(s, MachineConditionAccessible, corev1.ConditionFalse, reason, msg) {
			r.Recorder.Eventf(s.m, wi, corev1.EventTypeWarning, EventMachineNotAccessible, "Connect", "%s", msg)
		}
	}
	ready := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionReady)
	if ready != nil && ready.Status == metav1.ConditionTrue {
		if r.setCondition(s, MachineConditionNodeReady, corev1.ConditionTrue, ready.Reason, "Node "+wi.Status.NodeName+" is Ready") {
			r.Recorder.Eventf(s.m, wi, corev1.EventTypeNormal, EventMachineNodeReady, "Join", "Node %s is Ready", wi.Status.NodeName)
		}
	} else if ready != nil {
		r.setCondition(s, MachineConditionNodeReady, corev1.ConditionFalse, ready.Reason, ready.Message)
	}
	return res, false, nil
}

// setCondition records what the Machine's condition t should say; it
// returns true when that changes its status (a transition, or a first
// report), which is when an Event is due.
func (r *MachineReconciler) setCondition(s *machineScope, t machinev1beta1.ConditionType, status corev1.ConditionStatus, reason, msg string) bool {
	c := machinev1beta1.Condition{
		Type: t, Status: status, Reason: reason, Message: core.Truncate(msg, core.MaxConditionMessageBytes),
		LastTransitionTime: metav1.NewTime(r.now()),
	}
	if status == corev1.ConditionFalse {
		c.Severity = machinev1beta1.ConditionSeverityWarning
	}
	transition := true
	for _, old := range s.m.Status.Conditions {
		if old.Type == t && old.Status == status {
			c.LastTransitionTime, transition = old.LastTransitionTime, false
		}
	}
	s.conditions = append(s.conditions, c)
	return transition
}

// applyConditions server-side applies the conditions the Reconcile set,
// when any differs from the Machine's.
func (r *MachineReconciler) applyConditions(ctx context.Context, s *machineScope) error {
	changed := false
	for _, c := range s.conditions {
		old := findMachineCondition(s.m.Status.Conditions, c.Type)
		if old == nil || old.Status != c.Status || old.Reason != c.Reason || old.Message != c.Message || old.Severity != c.Severity {
			changed = true
		}
	}
	if !changed {
		return nil
	}
	conds := make([]any, 0, len(s.conditions))
	for _, c := range s.conditions {
		m := map[string]any{
			"type": string(c.Type), "status": string(c.Status), "reason": c.Reason, "message": c.Message,
			"lastTransitionTime": c.LastTransitionTime.UTC().Format(time.RFC3339),
		}
		if c.Severity != "" {
			m["severity"] = string(c.Severity)
		}
		conds = append(conds, m)
	}
	u := machineApplyObject(s.m)
	u.Object["status"] = map[string]any{"conditions": conds}
	//nolint:staticcheck // see setHook.
	if err := r.Client.Status().Patch(ctx, u, client.Apply, client.FieldOwner(machineFieldOwner), client.ForceOwnership); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("set conditions of Machine %s: %w", s.owner, err)
	}
	return nil
}

func findMachineCondition(conds []machinev1beta1.Condition, t machinev1beta1.ConditionType) *machinev1beta1.Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

func (r *MachineReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// addressHolder returns the name of a WindowsInstance whose address is
// addr (normalised), or "".
func (r *MachineReconciler) addressHolder(ctx context.Context, addr string) (string, error) {
	var list wmcov1.WindowsInstanceList
	if err := r.Client.List(ctx, &list); err != nil {
		return "", fmt.Errorf("list WindowsInstances: %w", err)
	}
	for _, wi := range list.Items {
		if hostaddr.Key(wi.Spec.Address) == addr {
			return wi.Name, nil
		}
	}
	return "", nil
}

// setSpec sets the fields of spec that a Machine owns, from its address,
// the Node name the platform gives it and the platform's profile.
// Credentials stay as defaulted (the cloud-private-key Secret, as in WMCO).
func (r *MachineReconciler) setSpec(spec *wmcov1.WindowsInstanceSpec, addr, nodeName string) {
	spec.Address = addr
	spec.Username = r.Username
	if spec.Username == "" {
		spec.Username = r.profile.Username
	}
	spec.Port = wmcov1.PortOrDefault(r.Port)
	spec.NodeName = nodeName
	spec.Hostname = ""
	if r.profile.SetHostname {
		spec.Hostname = nodeName
	}
	spec.CloudProvider = r.profile.KubeletCloudProvider
}

// deleteInstance deletes the WindowsInstance of the Machine key when it is
// machine-sourced and names that Machine.
func (r *MachineReconciler) deleteInstance(ctx context.Context, key types.NamespacedName, why string) error {
	owner := key.Namespace + "/" + key.Name
	name := MachineInstanceName(key.Namespace, key.Name)
	wi := &wmcov1.WindowsInstance{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, wi); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !ownedByMachine(wi, owner) || !wi.DeletionTimestamp.IsZero() {
		return nil
	}
	ctrl.LoggerFrom(ctx).Info("Deleting WindowsInstance", "windowsInstance", klog.KObj(wi), "reason", why)
	err := r.Client.Delete(ctx, wi, client.Preconditions{UID: &wi.UID})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		// Gone already, or replaced: its events bring us back.
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete WindowsInstance %s of Machine %s: %w", name, owner, err)
	}
	return nil
}

// ownedByMachine reports whether wi is the machine-sourced instance of the
// Machine owner ("namespace/name").
func ownedByMachine(wi *wmcov1.WindowsInstance, owner string) bool {
	return wi.Labels[wmcov1.LabelSource] == wmcov1.SourceMachine && wi.Annotations[wmcov1.AnnotationMachine] == owner
}

// MachineInstanceName is the WindowsInstance name of a Machine:
// machine-<name> for Machines of openshift-machine-api. A Machine of another
// namespace, or a name that would pass 63 characters, gets a hash of
// "namespace/name" instead of (the end of) the name, so names stay unique
// across namespaces and valid as object names and label values.
func MachineInstanceName(namespace, name string) string {
	full := machineInstancePrefix + name
	if namespace == machineAPINamespace && len(full) <= machineInstanceNameMax {
		return full
	}
	sum := sha256.Sum256([]byte(namespace + "/" + name))
	suffix := "-" + hex.EncodeToString(sum[:])[:10]
	if len(full)+len(suffix) > machineInstanceNameMax {
		full = full[:machineInstanceNameMax-len(suffix)]
	}
	// Machine names are DNS subdomains; a cut may end on '-' or '.'.
	return strings.TrimRight(full, "-.") + suffix
}

// machineAddress picks the host address of a Machine among the address
// types the platform allows, normalised: an InternalIP, IPv4 first, else
// an InternalDNS name; "" when it has none yet. refused says why each
// address the operator never connects to (link-local, multicast, ...: see
// pkg/hostaddr) was passed over; it is complete when addr is "".
func machineAddress(addrs []corev1.NodeAddress, types []corev1.NodeAddressType) (addr string, refused []string) {
	var v6, dns string
	for _, a := range addrs {
		if (a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeInternalDNS) || !slices.Contains(types, a.Type) {
			continue
		}
		n, err := hostaddr.Normalize(a.Address)
		var forbidden *hostaddr.ForbiddenError
		if errors.As(err, &forbidden) {
			refused = append(refused, forbidden.Error())
			continue
		}
		if err != nil {
			continue
		}
		ip, err := netip.ParseAddr(n)
		switch {
		case a.Type == corev1.NodeInternalDNS:
			if dns == "" {
				dns = n
			}
		case err != nil:
			// An InternalIP that is a name.
		case ip.Is4():
			return n, refused
		case v6 == "":
			v6 = n
		}
	}
	if v6 != "" {
		return v6, refused
	}
	return dns, refused
}

// SetupWithManager registers the reconciler with mgr. Call it only when the
// cluster serves machine.openshift.io/v1beta1 Machines
// (cluster.Info.MachineAPI).
func (r *MachineReconciler) SetupWithManager(mgr ctrl.Manager) error {
	switch {
	case r.Client == nil:
		return errors.New("MachineReconciler: Client is nil")
	case r.Recorder == nil:
		return errors.New("MachineReconciler: Recorder is nil")
	case r.Port < 0 || r.Port > 65535:
		return fmt.Errorf("MachineReconciler: Port %d is not from 1 to 65535", r.Port)
	case r.AccessTimeout < 0:
		return fmt.Errorf("MachineReconciler: AccessTimeout %s is negative", r.AccessTimeout)
	}
	if r.AccessTimeout == 0 {
		r.AccessTimeout = DefaultMachineAccessTimeout
	}
	r.Recorder = core.Recorder(r.Recorder)
	var known bool
	if r.profile, known = platform.Lookup(r.Platform); !known {
		mgr.GetLogger().Info("The cluster's platform has no profile of its own; Windows Machines are handled as on None",
			"platform", r.Platform)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("machine-inventory").
		For(&machinev1beta1.Machine{}, builder.WithPredicates(windowsMachineChanged())).
		Watches(&wmcov1.WindowsInstance{}, handler.EnqueueRequestsFromMapFunc(machineOfInstance),
			builder.WithPredicates(machineInstanceChanged())).
		Complete(r)
}

// windowsMachineChanged passes events of Machines that are or were Windows
// Machines, so a Machine losing its label still has its instance removed.
func windowsMachineChanged() predicate.Funcs {
	windows := func(o client.Object) bool { return o.GetLabels()[wmcov1.MachineOSIDLabel] == "Windows" }
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return windows(e.Object) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return windows(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return windows(e.ObjectOld) || windows(e.ObjectNew) },
		GenericFunc: func(e event.GenericEvent) bool { return windows(e.Object) },
	}
}

// machineInstanceChanged passes events of machine-sourced WindowsInstances
// except status updates that change nothing the Machine reports (its
// Reachable and Ready conditions). Creates include the initial list when
// the manager starts, and updates with an unchanged resourceVersion are
// resyncs: both let orphans be found.
func machineInstanceChanged() predicate.Funcs {
	ours := func(o client.Object) bool { return o.GetLabels()[wmcov1.LabelSource] == wmcov1.SourceMachine }
	reported := func(o client.Object) []string {
		wi, ok := o.(*wmcov1.WindowsInstance)
		if !ok {
			return nil
		}
		var out []string
		for _, t := range []string{wmcov1.ConditionReachable, wmcov1.ConditionReady} {
			if c := meta.FindStatusCondition(wi.Status.Conditions, t); c != nil {
				out = append(out, t+"="+string(c.Status)+"/"+c.Reason)
			}
		}
		return out
	}
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return ours(e.Object) },
		DeleteFunc: func(e event.DeleteEvent) bool { return ours(e.Object) },
		UpdateFunc: func(e event.UpdateEvent) bool {
			if !ours(e.ObjectOld) && !ours(e.ObjectNew) {
				return false
			}
			return e.ObjectOld.GetResourceVersion() == e.ObjectNew.GetResourceVersion() ||
				e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() ||
				!equality.Semantic.DeepEqual(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) ||
				!equality.Semantic.DeepEqual(e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations()) ||
				!slices.Equal(reported(e.ObjectOld), reported(e.ObjectNew)) ||
				!e.ObjectOld.GetDeletionTimestamp().Equal(e.ObjectNew.GetDeletionTimestamp())
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// machineOfInstance maps a machine-sourced WindowsInstance to its Machine
// through the wmco.io/machine annotation.
func machineOfInstance(ctx context.Context, o client.Object) []reconcile.Request {
	owner := o.GetAnnotations()[wmcov1.AnnotationMachine]
	ns, name, ok := strings.Cut(owner, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		ctrl.LoggerFrom(ctx).Info("Machine-sourced WindowsInstance does not name its Machine; leaving it alone",
			"windowsInstance", klog.KObj(o), "annotation", wmcov1.AnnotationMachine, "value", owner)
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}}
}
