package inventory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/hostaddr"
)

const (
	// DefaultMachineUsername is the user the operator logs in as on the
	// hosts of Windows Machines, as WMCO does.
	DefaultMachineUsername = "Administrator"

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
)

// MachineReconciler gives every Windows Machine (machine.openshift.io/v1beta1,
// labelled machine.openshift.io/os-id=Windows and not
// windowsmachineconfig.openshift.io/ignore=true) a WindowsInstance labelled
// wmco.io/source=machine, once the Machine reports an internal address. It
// deletes that instance when the Machine goes away, is being deleted, or
// stops being a Windows Machine the operator may manage. It only
// translates: it never touches a host.
//
// It needs the Machine API: main calls SetupWithManager only when
// cluster.Info.MachineAPI is true (OpenShift with the machine-api), since
// the watch on Machines cannot start where they are not served.
type MachineReconciler struct {
	// Client reads Machines and WindowsInstances from the manager's cache
	// and writes WindowsInstances.
	Client client.Client
	// Username to log in as on Machine hosts; DefaultMachineUsername when
	// empty.
	Username string
	// Port is the SSH port of Machine hosts; 0 means the API's default,
	// 22.
	Port int32
}

// +kubebuilder:rbac:groups=machine.openshift.io,resources=machines,verbs=get;list;watch
// +kubebuilder:rbac:groups=wmco.io,resources=windowsinstances,verbs=get;list;watch;create;update;patch;delete

// Reconcile makes the WindowsInstance of one Machine match it. Requests
// come from Machine events and from events of machine-sourced
// WindowsInstances (mapped through their wmco.io/machine annotation), so an
// instance whose Machine no longer exists is deleted when the manager
// starts and on every resync.
func (r *MachineReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	m := &machinev1beta1.Machine{}
	if err := r.Client.Get(ctx, req.NamespacedName, m); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("get Machine %s: %w", req.NamespacedName, err)
		}
		return ctrl.Result{}, r.deleteInstance(ctx, req.NamespacedName, "the Machine no longer exists")
	}
	if why := machineUnmanagedReason(m); why != "" {
		return ctrl.Result{}, r.deleteInstance(ctx, req.NamespacedName, why)
	}
	addr, refused := machineAddress(m.Status.Addresses)
	if addr == "" && len(refused) > 0 {
		// No requeue: a status update with another address is an event of
		// the Machine watch. An instance made earlier stays: the
		// WindowsInstance controller refuses to connect to its address.
		log.Info("Machine has no internal address the operator may connect to; it gets no WindowsInstance",
			"machine", klog.KObj(m), "refused", refused)
		return ctrl.Result{}, nil
	}
	if addr == "" {
		// No requeue: the Machine's status update with its address is an
		// event of the Machine watch.
		log.Info("Waiting for the Machine's internal address", "machine", klog.KObj(m))
		return ctrl.Result{}, nil
	}
	return r.applyInstance(ctx, m, addr)
}

// machineUnmanagedReason says why a Machine must have no WindowsInstance,
// or "" when it must have one.
func machineUnmanagedReason(m *machinev1beta1.Machine) string {
	switch {
	case !m.DeletionTimestamp.IsZero():
		return "the Machine is being deleted"
	case m.Labels[wmcov1.MachineOSIDLabel] != "Windows":
		return fmt.Sprintf("the Machine is not labelled %s=Windows", wmcov1.MachineOSIDLabel)
	case m.Labels[wmcov1.MachineIgnoreLabel] == "true":
		return fmt.Sprintf("the Machine is labelled %s=true", wmcov1.MachineIgnoreLabel)
	}
	return ""
}

// applyInstance creates or updates the WindowsInstance of m.
func (r *MachineReconciler) applyInstance(ctx context.Context, m *machinev1beta1.Machine, addr string) (ctrl.Result, error) {
	owner := m.Namespace + "/" + m.Name
	name := MachineInstanceName(m.Namespace, m.Name)
	log := ctrl.LoggerFrom(ctx).WithValues("machine", klog.KObj(m), "windowsInstance", klog.KRef("", name))

	wi := &wmcov1.WindowsInstance{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: name}, wi)
	if apierrors.IsNotFound(err) {
		holder, err := r.addressHolder(ctx, addr)
		if err != nil {
			return ctrl.Result{}, err
		}
		if holder != "" {
			// One host, one WindowsInstance. The holder's deletion is not
			// watched here (it may be anyone's), hence the requeue.
			log.Info("Another WindowsInstance already has the Machine's address; waiting for it to go",
				"address", addr, "holder", holder)
			return ctrl.Result{RequeueAfter: machineAddressTakenRequeue}, nil
		}
		wi = &wmcov1.WindowsInstance{}
		wi.Name = name
		wi.Labels = map[string]string{wmcov1.LabelSource: wmcov1.SourceMachine}
		wi.Annotations = map[string]string{wmcov1.AnnotationMachine: owner}
		r.setSpec(&wi.Spec, addr)
		log.Info("Creating WindowsInstance", "address", addr)
		if err := r.Client.Create(ctx, wi); err != nil {
			// AlreadyExists means the cache lags: the error retries.
			return ctrl.Result{}, fmt.Errorf("create WindowsInstance %s for Machine %s: %w", name, owner, err)
		}
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("get WindowsInstance %s: %w", name, err)
	}
	if !ownedByMachine(wi, owner) {
		log.Info("WindowsInstance exists and does not belong to this Machine; leaving it alone",
			"source", wi.Labels[wmcov1.LabelSource], "annotation", wi.Annotations[wmcov1.AnnotationMachine])
		return ctrl.Result{}, nil
	}
	if !wi.DeletionTimestamp.IsZero() {
		// No requeue: the instance's delete event maps back to the Machine.
		log.Info("WindowsInstance is being deleted; it is created again once it is gone")
		return ctrl.Result{}, nil
	}
	before := wi.DeepCopy()
	r.setSpec(&wi.Spec, addr)
	if equality.Semantic.DeepEqual(before.Spec, wi.Spec) {
		return ctrl.Result{}, nil
	}
	log.Info("Updating WindowsInstance", "address", addr)
	// A merge patch of the Machine's fields only; status is left alone.
	if err := r.Client.Patch(ctx, wi, client.MergeFrom(before)); err != nil {
		return ctrl.Result{}, fmt.Errorf("update WindowsInstance %s for Machine %s: %w", name, owner, err)
	}
	return ctrl.Result{}, nil
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

// setSpec sets the fields of spec that a Machine owns. Credentials stay
// as defaulted (the cloud-private-key Secret, as in WMCO).
func (r *MachineReconciler) setSpec(spec *wmcov1.WindowsInstanceSpec, addr string) {
	spec.Address = addr
	spec.Username = r.Username
	if spec.Username == "" {
		spec.Username = DefaultMachineUsername
	}
	spec.Port = wmcov1.PortOrDefault(r.Port)
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

// machineAddress picks the host address of a Machine, normalised: an
// InternalIP, IPv4 first, else an InternalDNS name; "" when it has none
// yet. refused says why each address the operator never connects to
// (link-local, multicast, ...: see pkg/hostaddr) was passed over; it is
// complete when addr is "".
func machineAddress(addrs []corev1.NodeAddress) (addr string, refused []string) {
	var v6, dns string
	for _, a := range addrs {
		if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeInternalDNS {
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
	if r.Client == nil {
		return errors.New("MachineReconciler: Client is nil")
	}
	if r.Port < 0 || r.Port > 65535 {
		return fmt.Errorf("MachineReconciler: Port %d is not from 1 to 65535", r.Port)
	}
	if r.Username == "" {
		r.Username = DefaultMachineUsername
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
// except status-only updates. Creates include the initial list when the
// manager starts, and updates with an unchanged resourceVersion are
// resyncs: both let orphans be found.
func machineInstanceChanged() predicate.Funcs {
	ours := func(o client.Object) bool { return o.GetLabels()[wmcov1.LabelSource] == wmcov1.SourceMachine }
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
				!equality.Semantic.DeepEqual(e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations())
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
