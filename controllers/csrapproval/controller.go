// Package csrapproval is the strict approver of Windows kubelets'
// certificate signing requests: it approves what it can tie to a known
// WindowsInstance under the rules of pkg/csr and never touches a host.
package csrapproval

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/bootstrap"
	"github.com/openwmco/wmco/pkg/csr"
	"github.com/openwmco/wmco/pkg/metrics"
)

// +kubebuilder:rbac:groups=certificates.k8s.io,resources=certificatesigningrequests,verbs=get;list;watch
// +kubebuilder:rbac:groups=certificates.k8s.io,resources=certificatesigningrequests/approval,verbs=update
// +kubebuilder:rbac:groups=certificates.k8s.io,resources=signers,verbs=approve,resourceNames=kubernetes.io/kube-apiserver-client-kubelet;kubernetes.io/kubelet-serving
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=wmco.io,resources=windowsinstances,verbs=get;list;watch
// The bootstrap credentials issued per host (pkg/bootstrap), read live:
// the requester's ServiceAccount by name (plain Kubernetes), Secrets
// keeping node-bootstrapper tokens with their credential IDs (OpenShift).
// +kubebuilder:rbac:groups="",namespace=wmco-system,resources=serviceaccounts,verbs=get
// +kubebuilder:rbac:groups="",namespace=wmco-system,resources=secrets,verbs=list
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

const (
	// CSRConditionReasonApproved is the reason of the approver's Approved
	// condition on a CSR.
	CSRConditionReasonApproved = "WMCOApproved"
	// CSRConditionReasonDenied is the reason of its Denied condition.
	CSRConditionReasonDenied = "WMCODenied"

	// EventCSRDenied and the other Event reasons are recorded on the CSR
	// and on the WindowsInstance it names. It is recorded when the CSR
	// names a known host but looks forged. An approval is no Event: the
	// CSR's Approved condition carries its reason and message, and
	// metrics.CSRDecisions counts it (wmco_csr_decisions_total).
	EventCSRDenied = "CSRDenied"
	// EventCSRPending is recorded when the CSR is left pending; the note
	// says why.
	EventCSRPending = "CSRPending"
)

// Reconciler approves the kubelet certificate signing requests
// of Windows hosts under the rules of pkg/csr and denies those that name a
// known host but look forged. CSRs it cannot tie to a WindowsInstance (Linux
// nodes, other signers) are left to others, untouched.
//
// It acts on CSRs with a kubelet signer and no Approved or Denied
// condition, and re-evaluates them when a WindowsInstance learns its node
// name or addresses and when a Node appears or changes owner, so nothing
// waits for a resync.
//
// A decision reads the CSR and the instance from the manager's cache (the
// instance through an index by node name, so a burst of CSRs costs no list
// of every instance) and reads live (a consistent read) only where a
// lagging cache could turn the verdict: the bootstrap credentials of the
// one instance the CSR names (issued moments before the CSR they
// authenticate, and revoked once the host has joined: a revoked one must
// not be approved). Decisions made at once share that read
// (bootstrap.Tokens.IdentitiesOf), each waiting for one that started after
// it asked. Whether a Node of that name exists, and whose it is, comes
// from the manager's cache when it holds the Node labelled as this
// instance's, else from a cache of every Node's name (nodeNames: metadata
// only, trimmed to the name and the wmco.io/instance label; the manager's
// holds only the operator's labelled Nodes, so it cannot tell a Node that
// does not exist from a foreign or just registered one). Only a Node that
// exists and is not labelled as this instance's is read in full, from the
// API server's watch cache (its addresses may show it to be the host's;
// see nodeFromWatchCache). An approval is no Event (see announce), so an
// approved bootstrap CSR costs one API request, the approval, and its
// share of a live read: a GET when it is decided alone, a LIST of the
// ServiceAccounts of the instances decided with it in a burst.
type Reconciler struct {
	// Client reads CSRs, WindowsInstances and Nodes from the manager's
	// cache and writes approvals. It must be the manager's client: the
	// instances are looked up through the cache's node-name index.
	Client client.Client
	// APIReader reads without the manager's cache: the Node a CSR names
	// when the cache does not hold it as the instance's (from the API
	// server's watch cache), and the bootstrap credentials when Tokens
	// has no Reader of its own (a quorum read).
	// Default: the manager's API reader.
	APIReader client.Reader
	Config    core.Config
	// Tokens knows the bootstrap credentials issued per host (required):
	// the issuer the WindowsInstance controller uses (per-host
	// ServiceAccounts on plain Kubernetes, node-bootstrapper tokens told
	// apart by credential ID on OpenShift). No identity is accepted for
	// a host beyond what it issued for that host.
	Tokens bootstrap.Issuer
	// Recorder emits events.k8s.io/v1 Events on CSRs and instances, e.g.
	// mgr.GetEventRecorder("wmco-csr-approver"). CSRs and instances are
	// cluster-scoped: their Events land in the default namespace.
	Recorder events.EventRecorder

	// nodeNames holds the name and wmco.io/instance label of every Node
	// (newNodeNames).
	nodeNames client.Reader
	// tokens is Tokens reading through APIReader unless it names a Reader:
	// a bootstrap credential is issued moments before the CSR it
	// authenticates, and a lagging cache would deny that CSR for good.
	tokens bootstrap.Issuer
	// seen remembers the last decision per pending CSR, across reconciles,
	// so each verdict is counted and announced once.
	seen *csrDecisionMemory
}

// SetupWithManager checks the dependencies and registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	switch {
	case r.Client == nil:
		return errors.New("CSR approver: Client is required")
	case r.Recorder == nil:
		return errors.New("CSR approver: Recorder is required")
	case r.Tokens == nil:
		return errors.New("CSR approver: Tokens is required")
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	// Notes over the API server's limit would lose the whole Event.
	r.Recorder = core.Recorder(r.Recorder)
	r.tokens = r.Tokens.ReadingFrom(r.APIReader)
	r.seen = newCSRDecisionMemory(metrics.CSRDecisions)
	nodeNames, err := newNodeNames(mgr)
	if err != nil {
		return err
	}
	r.nodeNames = nodeNames
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &wmcov1.WindowsInstance{}, instanceNodeNameIndex, indexInstanceNodeName); err != nil {
		return fmt.Errorf("CSR approver: index WindowsInstances by node name: %w", err)
	}

	return ctrl.NewControllerManagedBy(mgr).
		Named("csr-approver").
		For(&certificatesv1.CertificateSigningRequest{}, builder.WithPredicates(csrPendingKubeletPredicate())).
		Watches(&wmcov1.WindowsInstance{}, handler.EnqueueRequestsFromMapFunc(r.pendingCSRs),
			builder.WithPredicates(csrInstanceChangedPredicate())).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.pendingCSRs),
			builder.WithPredicates(csrNodeChangedPredicate())).
		// Each decision waits on a shared live read and its approval; a
		// burst of joining hosts should not queue behind a few workers.
		// Decisions on one CSR are still serialised by the workqueue.
		WithOptions(controller.Options{MaxConcurrentReconciles: csrWorkers}).
		Complete(r)
}

// csrWorkers is how many CSRs are decided at once: each worker mostly
// waits, on the shared live read of bootstrap credentials and on its
// approval, so a burst is decided at the pace the API server answers, and
// the more workers wait on one read, the fewer reads a burst costs. In
// make bench's 1,000-CSR burst with shared reads, 256 workers gave a p99
// of 2.10-2.52 s in three runs against 2.70-3.17 s for 96; 512 gave no
// more (2.09-2.48 s). An idle worker costs a parked goroutine.
const csrWorkers = 256

// instanceNodeNameIndex indexes WindowsInstances by the node name they
// register as (core.NodeName); instances being deleted are left out, as
// they get no certificates.
const instanceNodeNameIndex = "wmco.io/csr-node-name"

func indexInstanceNodeName(o client.Object) []string {
	wi, ok := o.(*wmcov1.WindowsInstance)
	if !ok || !wi.DeletionTimestamp.IsZero() {
		return nil
	}
	if n := core.NodeName(wi); n != "" {
		return []string{n}
	}
	return nil
}

// Reconcile evaluates one pending kubelet CSR and approves it, denies it
// or leaves it pending with an Event saying why.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	c := &certificatesv1.CertificateSigningRequest{}
	if err := r.Client.Get(ctx, req.NamespacedName, c); err != nil {
		if apierrors.IsNotFound(err) {
			r.seen.forget(req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get CSR %s: %w", req.Name, err)
	}
	if !csrIsPendingKubelet(c) {
		// Decided (by us or another approver) or not a kubelet CSR.
		r.seen.forget(c.Name)
		return ctrl.Result{}, nil
	}
	if r.seen.decided(c) {
		// Approved or denied here already; the cache has not caught up
		// with that write yet (an instance or Node event enqueued the
		// CSR again meanwhile). Writing again would only conflict: in a
		// 50-host join 21 of 121 approval writes did.
		return ctrl.Result{}, nil
	}

	d, wi, err := r.evaluate(ctx, c)
	if err != nil {
		return ctrl.Result{}, err
	}
	log = log.WithValues("verdict", d.Verdict.String(), "instance", d.Instance, "username", c.Spec.Username)

	switch d.Verdict {
	case csr.Approve, csr.Deny:
		condType, condReason := certificatesv1.CertificateApproved, CSRConditionReasonApproved
		if d.Verdict == csr.Deny {
			condType, condReason = certificatesv1.CertificateDenied, CSRConditionReasonDenied
			log.Info("Denying CSR", "reason", d.Reason)
		} else {
			log.Info("Approving CSR", "reason", d.Reason)
		}
		c.Status.Conditions = append(c.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type:           condType,
			Status:         corev1.ConditionTrue,
			Reason:         condReason,
			Message:        d.Reason,
			LastUpdateTime: metav1.Now(),
		})
		if err := r.Client.SubResource("approval").Update(ctx, c); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				// The CSR changed or went away meanwhile; that change
				// fires the watch and the CSR is looked at again.
				log.V(1).Info("CSR changed while deciding it", "error", err.Error())
				return ctrl.Result{}, nil
			}
			return ctrl.Result{}, fmt.Errorf("%s CSR %s: %w", strings.ToLower(d.Verdict.String()), c.Name, err)
		}
		r.seen.record(c, d)
		if d.Verdict == csr.Deny {
			r.announce(c, wi, d, corev1.EventTypeWarning, EventCSRDenied, d.Verdict.String())
		}
	case csr.Pending:
		// No requeue: a change of the instance (addresses, node name) or
		// of the Node (created, labelled) fires a watch.
		if r.seen.record(c, d) {
			log.Info("CSR left pending", "reason", d.Reason)
			r.announce(c, wi, d, corev1.EventTypeWarning, EventCSRPending, "Evaluate")
		}
	case csr.Ignore:
		if r.seen.record(c, d) {
			log.V(1).Info("CSR is not a Windows host's, ignoring it", "reason", d.Reason)
		}
	}
	return ctrl.Result{}, nil
}

// evaluate applies the rules to the CSR with what is known of the
// WindowsInstance and Node it names. It returns the instance the decision
// names.
func (r *Reconciler) evaluate(ctx context.Context, c *certificatesv1.CertificateSigningRequest) (csr.Decision, *wmcov1.WindowsInstance, error) {
	var (
		matched   *wmcov1.WindowsInstance
		lookupErr error
	)
	lookup := func(nodeName string) (csr.Instance, bool) {
		var list wmcov1.WindowsInstanceList
		if err := r.Client.List(ctx, &list, client.MatchingFields{instanceNodeNameIndex: nodeName}); err != nil {
			lookupErr = fmt.Errorf("list WindowsInstances of node %s: %w", nodeName, err)
			return csr.Instance{}, false
		}
		wi, err := csrInstanceFor(list.Items, nodeName)
		if err != nil {
			ctrl.LoggerFrom(ctx).Info("Cannot tie CSR to one WindowsInstance", "node", nodeName, "reason", err.Error())
			return csr.Instance{}, false
		}
		if wi == nil {
			return csr.Instance{}, false
		}
		inst, err := r.describe(ctx, c, wi, nodeName)
		if err != nil {
			lookupErr = err
			return csr.Instance{}, false
		}
		matched = wi
		return inst, true
	}
	d := csr.Evaluate(&c.Spec, lookup)
	if lookupErr != nil {
		return csr.Decision{}, nil, lookupErr
	}
	if matched == nil || matched.Name != d.Instance {
		matched = nil
	}
	return d, matched, nil
}

// describe is what the rules need to know of the instance that registers
// as nodeName to decide on c: its bootstrap credentials of c's requester
// read live when the rules consult them (csr.NeedsBootstrapIdentities),
// its Node from the cache when the cache holds it as this instance's,
// else read live.
func (r *Reconciler) describe(ctx context.Context, c *certificatesv1.CertificateSigningRequest, wi *wmcov1.WindowsInstance, nodeName string) (csr.Instance, error) {
	inst := csr.Instance{
		Name:      wi.Name,
		NodeName:  nodeName,
		Addresses: wi.Status.Host.Addresses,
		Hostname:  wi.Status.Host.Hostname,
	}
	// The two live reads go out together: a decision waits for the
	// slower, not for both in turn.
	var (
		ids    []csr.BootstrapIdentity
		idsErr error
		done   = make(chan struct{})
	)
	go func() {
		defer close(done)
		if csr.NeedsBootstrapIdentities(&c.Spec, nodeName) {
			ids, idsErr = r.tokens.IdentitiesOf(ctx, wi, c.Spec.Username)
		}
	}()
	state, nodeErr := r.nodeState(ctx, wi, nodeName)
	<-done
	if idsErr != nil {
		return csr.Instance{}, idsErr
	}
	if nodeErr != nil {
		return csr.Instance{}, nodeErr
	}
	inst.BootstrapIdentities, inst.Node = ids, state
	return inst, nil
}

// nodeState is what is known of the Node named nodeName: owned when the
// manager's cache or the cache of Node names holds it labelled as the
// instance's; absent when the cache of Node names has none of that name;
// else what the API server's watch cache says of the whole Node (its
// addresses may make it the instance's; nodeFromWatchCache).
func (r *Reconciler) nodeState(ctx context.Context, wi *wmcov1.WindowsInstance, nodeName string) (csr.NodeState, error) {
	// The manager's cache first: its Node watch enqueues the CSR when
	// the Node is labelled, so it has the label when that reconcile runs;
	// the cache of Node names and the API server's watch cache may not
	// yet, and no later event would come.
	node := &corev1.Node{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: nodeName}, node); err == nil && node.Labels[wmcov1.LabelInstance] == wi.Name {
		return csr.NodeOwned, nil
	}
	meta := nodeMetadata()
	switch err := r.nodeNames.Get(ctx, client.ObjectKey{Name: nodeName}, meta); {
	case apierrors.IsNotFound(err):
		return csr.NodeAbsent, nil
	case err != nil:
		return csr.NodeAbsent, fmt.Errorf("look up Node %s in the cache of Node names: %w", nodeName, err)
	case meta.Labels[wmcov1.LabelInstance] == wi.Name:
		// Labelled since the manager's cache last heard of it.
		return csr.NodeOwned, nil
	}
	node = &corev1.Node{}
	switch err := r.APIReader.Get(ctx, client.ObjectKey{Name: nodeName}, node, nodeFromWatchCache); {
	case apierrors.IsNotFound(err):
		return csr.NodeAbsent, nil
	case err != nil:
		return csr.NodeAbsent, fmt.Errorf("get Node %s: %w", nodeName, err)
	case core.OwnsNode(wi, node):
		return csr.NodeOwned, nil
	default:
		return csr.NodeForeign, nil
	}
}

// nodeFromWatchCache has a GET of a Node answered from the API server's
// watch cache (resourceVersion "0") instead of a quorum read of etcd.
// Whether a Node exists needs no quorum either, so the cache of Node
// names answers that (newNodeNames). A Node is foreign for as long as it
// exists (it is not revoked), and one created a few milliseconds before
// the cache hears of it is the race a quorum read has too, with the Node
// created just after it. A stale answer that a Node is not the
// instance's only leaves a renewal or serving CSR pending until the Node
// watch fires. The freshness that matters is the bootstrap identity's
// (a revoked one must not be approved): the issuer reads it with a
// quorum read, the decision's one.
var nodeFromWatchCache = &client.GetOptions{Raw: &metav1.GetOptions{ResourceVersion: "0"}}

// newNodeNames is a cache of every Node's metadata, trimmed to the name
// and the wmco.io/instance label (trimNodeMetadata): whether a Node of a
// name exists, without a request per CSR. The manager starts it with its
// other caches and starts controllers once it holds every Node. At 5,000
// Nodes it holds a few hundred bytes each; a Node's status updates come
// as metadata events, one for each of the kubelet's status writes.
func newNodeNames(mgr ctrl.Manager) (client.Reader, error) {
	c, err := core.AddCache(mgr, "the names of Nodes", cache.Options{
		ByObject: map[client.Object]cache.ByObject{nodeMetadata(): {Transform: trimNodeMetadata}},
	})
	if err != nil {
		return nil, err
	}
	// The informer starts with the cache, before any decision asks.
	if _, err := c.GetInformer(context.Background(), nodeMetadata()); err != nil {
		return nil, fmt.Errorf("CSR approver: the informer of Node names: %w", err)
	}
	return c, nil
}

// nodeMetadata is an empty Node metadata object, to read into.
func nodeMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
	return m
}

// trimNodeMetadata keeps of a Node's metadata what nodeState reads (its
// name and wmco.io/instance label) and what the informer needs (UID,
// resourceVersion); the kind stays. Tombstones and other objects pass
// unchanged.
func trimNodeMetadata(obj any) (any, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	out := &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Name: m.Name, UID: m.UID, ResourceVersion: m.ResourceVersion,
	}}
	if v, ok := m.Labels[wmcov1.LabelInstance]; ok {
		out.Labels = map[string]string{wmcov1.LabelInstance: v}
	}
	return out, nil
}

// announce records a denial or a CSR left pending as an Event on the CSR
// (the instance its related object) and on the WindowsInstance the
// decision names (the CSR its related object); a decision naming no
// instance goes on the CSR alone. Approvals are not announced: the CSR
// carries its Approved condition (reason WMCOApproved and the rule's
// message), metrics.CSRDecisions counts it, and a burst of joining hosts
// costs the API server one write fewer per CSR (make bench: the Event
// was one of the operator's four requests per approved CSR).
//
// The events.k8s.io recorder folds Events that differ only in their note
// into a series of the first one for a few minutes, so when a pending
// CSR's reason changes soon after, its Event keeps the first reason; the
// log line has the current one.
func (r *Reconciler) announce(c *certificatesv1.CertificateSigningRequest, wi *wmcov1.WindowsInstance, d csr.Decision, eventType, reason, action string) {
	if wi == nil {
		r.Recorder.Eventf(c, nil, eventType, reason, action, "%s", d.Reason)
		return
	}
	r.Recorder.Eventf(c, wi, eventType, reason, action, "%s", d.Reason)
	r.Recorder.Eventf(wi, c, eventType, reason, action, "CSR %s: %s", c.Name, d.Reason)
}

// pendingCSRs maps any event to every pending kubelet CSR, from the cache.
// They are few: kubelets' CSRs are decided within seconds.
func (r *Reconciler) pendingCSRs(ctx context.Context, _ client.Object) []reconcile.Request {
	var list certificatesv1.CertificateSigningRequestList
	if err := r.Client.List(ctx, &list); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing CSRs to re-evaluate")
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		if csrIsPendingKubelet(&list.Items[i]) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: list.Items[i].Name}})
		}
	}
	return out
}

// csrInstanceFor returns the instance that registers as nodeName (exact
// match), nil when none does. Instances being deleted get no certificates.
// Two instances claiming one name is an error: neither can be trusted.
func csrInstanceFor(items []wmcov1.WindowsInstance, nodeName string) (*wmcov1.WindowsInstance, error) {
	var found *wmcov1.WindowsInstance
	for i := range items {
		wi := &items[i]
		if !wi.DeletionTimestamp.IsZero() || core.NodeName(wi) != nodeName {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("node name %q is claimed by WindowsInstances %s and %s", nodeName, found.Name, wi.Name)
		}
		found = wi
	}
	return found, nil
}

// csrIsKubelet tells whether the CSR asks a kubelet signer.
func csrIsKubelet(c *certificatesv1.CertificateSigningRequest) bool {
	return c.Spec.SignerName == certificatesv1.KubeAPIServerClientKubeletSignerName ||
		c.Spec.SignerName == certificatesv1.KubeletServingSignerName
}

// csrIsPendingKubelet tells whether the CSR asks a kubelet signer and is
// neither approved nor denied.
func csrIsPendingKubelet(c *certificatesv1.CertificateSigningRequest) bool {
	if !csrIsKubelet(c) {
		return false
	}
	for _, cond := range c.Status.Conditions {
		if cond.Type == certificatesv1.CertificateApproved || cond.Type == certificatesv1.CertificateDenied {
			return false
		}
	}
	return true
}

// csrPendingKubeletPredicate passes pending kubelet CSRs, and the update
// and deletion that end one, so the approver forgets what it remembered.
func csrPendingKubeletPredicate() predicate.Funcs {
	pending := func(o client.Object) bool {
		c, ok := o.(*certificatesv1.CertificateSigningRequest)
		return ok && csrIsPendingKubelet(c)
	}
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return pending(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return pending(e.ObjectOld) || pending(e.ObjectNew) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return pending(e.Object) },
		GenericFunc: func(e event.GenericEvent) bool { return pending(e.Object) },
	}
}

// csrInstanceFacts is what the rules read from a WindowsInstance.
type csrInstanceFacts struct {
	nodeName, hostname string
	addresses          string
	deleting           bool
}

func csrFactsOf(o client.Object) (csrInstanceFacts, bool) {
	wi, ok := o.(*wmcov1.WindowsInstance)
	if !ok {
		return csrInstanceFacts{}, false
	}
	return csrInstanceFacts{
		nodeName:  core.NodeName(wi),
		hostname:  wi.Status.Host.Hostname,
		addresses: strings.Join(wi.Status.Host.Addresses, ","),
		deleting:  !wi.DeletionTimestamp.IsZero(),
	}, true
}

// csrInstanceChangedPredicate passes instances created or deleted and
// updates that change what the rules read (node name, hostname, addresses,
// deletion), not the many other status writes.
func csrInstanceChangedPredicate() predicate.Funcs {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := csrFactsOf(e.ObjectOld)
		n, ok2 := csrFactsOf(e.ObjectNew)
		return !ok1 || !ok2 || o != n
	}}
}

// csrNodeChangedPredicate passes Nodes created or deleted and updates that
// change their owner: the wmco.io/instance label or the InternalIPs.
func csrNodeChangedPredicate() predicate.Funcs {
	owner := func(o client.Object) (string, []string, bool) {
		n, ok := o.(*corev1.Node)
		if !ok {
			return "", nil, false
		}
		var ips []string
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				ips = append(ips, a.Address)
			}
		}
		return n.Labels[wmcov1.LabelInstance], ips, true
	}
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		ol, oips, ok1 := owner(e.ObjectOld)
		nl, nips, ok2 := owner(e.ObjectNew)
		return !ok1 || !ok2 || ol != nl || !slices.Equal(oips, nips)
	}}
}

// csrVerdictResult is the result label of metrics.CSRDecisions.
func csrVerdictResult(v csr.Verdict) string {
	switch v {
	case csr.Approve:
		return "approved"
	case csr.Deny:
		return "denied"
	case csr.Pending:
		return "pending"
	default:
		return "ignored"
	}
}

// csrDecisionMemory remembers the last decision per pending CSR. A pending
// CSR is evaluated again on every change of an instance or Node; it is
// counted once per verdict it gets, and announced once per reason.
// Entries go when the CSR is decided or deleted.
type csrDecisionMemory struct {
	counter *prometheus.CounterVec

	mu   sync.Mutex
	last map[string]csrRemembered
}

type csrRemembered struct {
	uid      types.UID
	decision csr.Decision
}

func newCSRDecisionMemory(counter *prometheus.CounterVec) *csrDecisionMemory {
	return &csrDecisionMemory{counter: counter, last: map[string]csrRemembered{}}
}

// record stores the decision on the CSR and counts its verdict when it
// differs from the last one. It returns whether the decision (verdict or
// reason) is new.
func (m *csrDecisionMemory) record(c *certificatesv1.CertificateSigningRequest, d csr.Decision) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev, ok := m.last[c.Name]
	if ok && prev.uid != c.UID {
		ok = false // same name, another CSR
	}
	m.last[c.Name] = csrRemembered{uid: c.UID, decision: d}
	if !ok || prev.decision.Verdict != d.Verdict {
		m.counter.WithLabelValues(csrVerdictResult(d.Verdict)).Inc()
	}
	return !ok || prev.decision != d
}

// decided tells whether this CSR (same name and UID) was approved or
// denied here.
func (m *csrDecisionMemory) decided(c *certificatesv1.CertificateSigningRequest) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.last[c.Name]
	return ok && e.uid == c.UID && (e.decision.Verdict == csr.Approve || e.decision.Verdict == csr.Deny)
}

// forget drops what is remembered of a CSR.
func (m *csrDecisionMemory) forget(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.last, name)
}

// lastDecision is the decision last recorded for a CSR.
func (m *csrDecisionMemory) lastDecision(name string) (csr.Decision, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.last[name]
	return e.decision, ok
}

var _ reconcile.Reconciler = &Reconciler{}
