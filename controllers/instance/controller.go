package instance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/bootstrap"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// +kubebuilder:rbac:groups=wmco.io,resources=windowsinstances,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=wmco.io,resources=windowsinstances/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=wmco.io,resources=windowsinstances/finalizers,verbs=update
// +kubebuilder:rbac:groups=wmco.io,resources=windowsnodeconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch;update;patch;delete
// Secrets only in the operator's namespace (wmco-system here; kustomize's
// namespace transformer renames it with the Role): SSH keys, read live and
// watched; the bootstrap tokens of pkg/bootstrap, written. Keys in the
// namespaces WindowsNodeConfig spec.credentialNamespaces lists are read
// with a Role the admin grants there; no Secret is readable cluster-wide.
// +kubebuilder:rbac:groups="",namespace=wmco-system,resources=secrets,verbs=get;list;watch;create;update;delete
// Per-host bootstrap ServiceAccounts and their tokens (pkg/bootstrap):
// +kubebuilder:rbac:groups="",namespace=wmco-system,resources=serviceaccounts,verbs=list;create;delete
// +kubebuilder:rbac:groups="",namespace=wmco-system,resources=serviceaccounts/token,verbs=create
// On OpenShift, tokens of the machine-config-operator's node-bootstrapper
// (the name only; a ClusterServiceVersion cannot name its namespace):
// +kubebuilder:rbac:groups="",resources=serviceaccounts/token,verbs=create,resourceNames=node-bootstrapper
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// The one ClusterRoleBinding binding system:node-bootstrapper to them
// (create cannot be limited to a name; everything else is):
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterrolebindings,verbs=create
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterrolebindings,verbs=get;update;delete,resourceNames=wmco:node-bootstrapper
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=bind,resourceNames=system:node-bootstrapper

// Timeouts of the remote steps of one reconcile.
const (
	connectTimeout = 30 * time.Second
	commandTimeout = 2 * time.Minute
	uploadTimeout  = 10 * time.Minute
	// cleanupTimeout bounds `wicd cleanup`: stopping every service, each
	// within its own step deadline, and cleanupFileWait for processes
	// that still hold files.
	cleanupTimeout  = 8 * wicdapi.DefaultStepTimeout
	cleanupFileWait = 30 * time.Second
)

// Reconciler makes the host of each WindowsInstance a Ready,
// labelled and tainted node, and cleans it when the instance is deleted. It
// is the one place that touches a host.
type Reconciler struct {
	Client client.Client
	// APIReader reads without the cache: Secrets holding SSH keys, and an
	// instance the cache may lag behind on (fresh.go).
	APIReader client.Reader
	// Clientset drains Nodes.
	Clientset Clientset
	Config    core.Config
	Dialer    remote.Dialer
	// Payloads are the payloads the operator ships; each reconcile
	// selects the one the API server's version allows.
	Payloads *payload.Catalog
	// ServerVersion is the API server's version, kept current (a
	// *cluster.VersionWatcher, whose changes wake every instance).
	ServerVersion core.VersionSource
	// Cluster holds what kubelets need to know about the cluster, when
	// ClusterSource is nil.
	Cluster nodeconfig.ClusterFacts
	// ClusterSource keeps those facts current from the cluster's
	// configuration (OpenShift's config objects, WindowsNodeConfig); its
	// changes wake every instance. Default: Cluster, fixed.
	ClusterSource core.ClusterSource
	// Tokens issues and revokes hosts' bootstrap credentials (per-host
	// ServiceAccounts, or node-bootstrapper tokens on OpenShift).
	Tokens bootstrap.Issuer
	// Recorder emits events.k8s.io/v1 Events on instances.
	Recorder events.EventRecorder
	// Now is the clock (tests may replace it).
	Now func() time.Time
	// DrainTimeout is how long draining a Node may take before it is
	// reported as timed out (default DefaultDrainTimeout).
	DrainTimeout time.Duration
	// ExporterCertificates gives each host windows_exporter's serving
	// certificate; nil: windows_exporter serves plain HTTP.
	ExporterCertificates ExporterCertificates

	// slots bounds the hosts worked on at once by WindowsNodeConfig's
	// maxParallelConfigurations; set by SetupWithManager.
	slots *slots
	// conns keeps the SSH connection of a reconcile that ended well for
	// the instance's next reconcile (conncache.go); set by
	// SetupWithManager.
	conns *connCache
	// fresh records the version of each instance this controller last
	// wrote or read live, which decides whether a reconcile may read
	// its instance from the cache (fresh.go); set by SetupWithManager.
	fresh *freshness
	// upgradeMu serialises taking upgrade slots (recorded in instances'
	// status.upgrade) among this process's workers.
	upgradeMu sync.Mutex
	// wake enqueues instances no watched object brings (wake.go): those
	// waiting for a freed configuration slot, every instance when the
	// API server's version changed or an upgrade slot was freed, those
	// whose last reconcile saw other cluster facts than the source's
	// current ones (clusterSeen); set by SetupWithManager.
	wake *wakeups
	// clusterSeen maps an instance to the clusterKey of the facts its
	// last reconcile started with.
	clusterSeen sync.Map
	// retries spaces a failed instance's retries; a reconcile that could
	// not reach its host raises the next wait (unreachableRetry). Set by
	// SetupWithManager.
	retries *floorLimiter
}

// ExporterCertificates gives hosts windows_exporter's serving certificate.
type ExporterCertificates interface {
	// ExporterTLS returns the certificate of the host that registers as
	// nodeName with addresses (its node IP first), and when a renewed one
	// is due (zero: never by time; a change of Secret brings it). No
	// certificate and no error: none exists yet, the host serves plain
	// HTTP until Secret changes.
	ExporterTLS(ctx context.Context, nodeName string, addresses []string) (nodeconfig.ExporterTLS, time.Time, error)
	// Secret is the Secret in the operator's namespace whose change
	// changes every host's certificate.
	Secret() client.ObjectKey
}

// scope is the state of one reconcile of one instance. Phases read and
// fill it; nothing of it outlives the reconcile.
type scope struct {
	wi *wmcov1.WindowsInstance
	// base is the instance as read, for the status patch.
	base *wmcov1.WindowsInstance
	// config is the WindowsNodeConfig spec, defaulted.
	config wmcov1.WindowsNodeConfigSpec
	// session to the host, opened (or taken from the connection cache)
	// by the connection phase.
	session remote.Session
	// connKey is what session was opened with, for the connection cache.
	connKey connKey
	// dropSession: the host was told to reboot, the session is not kept.
	dropSession bool
	// parkSession: the host was dialled before it took a slot and none
	// was free: the session waits for the slot in the connection cache.
	parkSession bool
	// facts the agent reported in this reconcile.
	facts *wicdapi.Facts
	// node is the instance's Node, if it exists.
	node *corev1.Node
	// rotation is the SSH key rotation the connection phase found the
	// host needs (keys.go), for the keys phase.
	rotation *keyRotation
	// hostnamePending is the computer name reconcileHostname set for the
	// next boot, for the features phase to reboot for it too.
	hostnamePending string
	// waitingSlot: no configuration slot was free for this reconcile.
	waitingSlot bool
	// exporterRenewAt is when the host's windows_exporter certificate in
	// the plan is due for renewal; zero when not by time.
	exporterRenewAt time.Time
	// cluster is what kubelets need to know about the cluster, as the
	// cluster source told at the start of this reconcile.
	cluster nodeconfig.ClusterFacts
	// server is the API server's version for this reconcile; selected the
	// payload it allows.
	server   string
	selected payload.Entry
	// target is the payload this reconcile converges the host to: the
	// selected one, or the one the host runs while it waits for (or after
	// a failure of) its upgrade. Its Manifest is nil when the host's
	// payload is not in the catalog: the host is then left as it is.
	target payload.Entry
	// applied is the payload version the host's applied plan names (""
	// before its first configuration).
	applied string
	// replanned: the plan phase already applied a second plan in this
	// reconcile, rendered with the subnet of a Node that registered
	// during the first apply.
	replanned bool
	log       logr.Logger
}

// endSession keeps the reconcile's connection for the instance's next
// reconcile (the connection cache; parked when the instance waits for a
// slot) when the reconcile ended without an error and the host is
// neither rebooting nor being deleted; otherwise it closes it.
func (r *Reconciler) endSession(s *scope, err error) {
	sess := s.session
	if sess == nil {
		return
	}
	s.session = nil
	if err != nil || s.dropSession || s.connKey == "" || !s.wi.DeletionTimestamp.IsZero() || !remote.Alive(sess) {
		_ = sess.Close()
		return
	}
	if s.parkSession {
		r.conns.park(s.wi.Name, s.connKey, sess, time.Now())
		return
	}
	r.conns.put(s.wi.Name, s.connKey, sess, time.Now())
}

type phase func(ctx context.Context, s *scope) (ctrl.Result, error)

// Reconcile runs the phases in order; each returns early with a requeue or
// an error when it cannot finish, and the status is computed (summarize)
// and patched once at the end.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	// The cluster facts this reconcile works with, noted at once so that
	// a change of them wakes this instance only if it started before.
	cluster, problem := r.ClusterSource.ClusterFacts()
	r.clusterSeen.Store(req.Name, clusterKey(cluster, problem))
	wi := &wmcov1.WindowsInstance{}
	// From the cache only when it holds what this controller last wrote
	// (fresh.go): a reconcile that an event starts right after the
	// previous one patched the status would otherwise see the status
	// before that patch (an upgrade step, a slot) and act on it.
	if err := r.readInstance(ctx, req.NamespacedName, wi); err != nil {
		if apierrors.IsNotFound(err) {
			r.clusterSeen.Delete(req.Name)
			r.conns.drop(req.Name)
			r.slots.drop(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	s := &scope{wi: wi, base: wi.DeepCopy(), log: ctrl.LoggerFrom(ctx)}
	defer func() {
		summarize(wi, !wi.DeletionTimestamp.IsZero(), s.waitingSlot)
		r.endSession(s, retErr)
		if stalled(wi) {
			// Terminal: this generation was observed and is stuck.
			wi.Status.ObservedGeneration = wi.Generation
		}
		if equality.Semantic.DeepEqual(wi.Status, s.base.Status) {
			// Nothing to write: a host that stays unreachable is
			// retried without a request to the API server each time.
			return
		}
		if err := r.Client.Status().Patch(ctx, wi, client.MergeFrom(s.base)); err != nil && !apierrors.IsNotFound(err) {
			// The error retries; a requeue returned with it would be
			// ignored (and warned about).
			res, retErr = ctrl.Result{}, kerrors.NewAggregate([]error{retErr, fmt.Errorf("patch status: %w", err)})
		}
	}()

	config, err := r.nodeConfig(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	s.config = config
	s.server = r.ServerVersion.Version()
	s.selected, err = r.Payloads.Select(s.server)
	setPayloadCompatibleCondition(wi, s.selected, err)
	if err != nil && wi.DeletionTimestamp.IsZero() {
		// No host is touched with a payload the cluster does not allow:
		// the version watcher wakes every instance when the API
		// server's version changes.
		s.log.V(1).Info("No payload fits the API server", "server", s.server, "error", err.Error())
		return ctrl.Result{}, nil
	}

	s.cluster = cluster
	var mismatches []string
	if problem == "" && wi.DeletionTimestamp.IsZero() {
		if mismatches, err = r.networkMismatches(ctx, s); err != nil {
			return ctrl.Result{}, err
		}
	}
	r.reportClusterConfig(s, problem, mismatches)
	if (problem != "" || len(mismatches) > 0) && wi.DeletionTimestamp.IsZero() {
		// No host is touched with settings the cluster does not support
		// or a network that does not match the cluster's: the source
		// wakes the instances when its facts change, the WindowsNodeConfig
		// and the Node are watched; the requeue is a safety net.
		s.log.V(1).Info("The cluster's configuration does not let hosts join", "problem", problem, "networkMismatches", len(mismatches))
		return ctrl.Result{RequeueAfter: clusterProblemRequeue}, nil
	}

	if wi.DeletionTimestamp.IsZero() && wi.Spec.Paused {
		// Nothing to do: a change of spec.paused brings the next reconcile.
		r.conns.drop(wi.Name)
		r.slots.drop(wi.Name)
		return ctrl.Result{}, nil
	}
	if wi.DeletionTimestamp.IsZero() && !controllerutil.ContainsFinalizer(wi, wmcov1.Finalizer) {
		// The finalizer must be stored before the host is touched, so a
		// deletion always finds the host to clean.
		patch := client.MergeFrom(wi.DeepCopy())
		controllerutil.AddFinalizer(wi, wmcov1.Finalizer)
		// The patch's answer carries the stored status, without the
		// conditions this reconcile set so far: keep them for the status
		// patch (a terminal phase may end the reconciles before another
		// sets them again).
		status := wi.Status.DeepCopy()
		if err := r.Client.Patch(ctx, wi, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
		wi.Status = *status
		s.base.Finalizers, s.base.ResourceVersion = wi.Finalizers, wi.ResourceVersion
	}
	r.slots.setLimit(int(config.MaxParallelConfigurations))
	// A host not known to answer is dialled before it takes a slot: one
	// that never answers then costs a worker for its connect timeout, not
	// a slot that hosts which answer are waiting for.
	dialFirst := wi.DeletionTimestamp.IsZero() && !meta.IsStatusConditionTrue(wi.Status.Conditions, wmcov1.ConditionReachable)
	if dialFirst {
		r.showProgress(ctx, s, wmcov1.ConditionReachable)
		if res, err := r.reconcileConnection(ctx, s); err != nil || !res.IsZero() {
			return res, err
		}
	}
	if !r.slots.tryAcquire(wi.Name, meta.IsStatusConditionTrue(wi.Status.Conditions, wmcov1.ConditionConfigured)) {
		s.waitingSlot = true
		// A connection dialled first waits for the slot (conncache.go):
		// the host is dialled once per join.
		s.parkSession = true
		// A freed slot wakes this instance (wakeups); the requeue is a
		// safety net.
		return ctrl.Result{RequeueAfter: slotRequeue}, nil
	}
	defer r.slots.release(wi.Name)

	if !wi.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, s)
	}
	connect := r.reconcileConnection
	if dialFirst {
		connect = func(context.Context, *scope) (ctrl.Result, error) { return ctrl.Result{}, nil }
	}
	phases := []struct {
		run  phase
		step string
	}{
		{connect, wmcov1.ConditionReachable},
		{r.reconcileAgent, wmcov1.ConditionReachable},
		{r.reconcileKeys, wmcov1.ConditionReachable},
		{r.reconcileReboot, wmcov1.ConditionPreflightPassed},
		{r.reconcileHostname, wmcov1.ConditionPreflightPassed},
		{r.reconcileFeatures, wmcov1.ConditionPreflightPassed},
		{r.reconcilePreflight, wmcov1.ConditionPreflightPassed},
		{r.reconcileUpgrade, ""},
		{r.reconcilePayload, wmcov1.ConditionConfigured},
		{r.reconcilePlan, wmcov1.ConditionConfigured},
		{r.reconcileNode, wmcov1.ConditionNodeReady},
		{r.reconcileUpgradeDone, ""},
	}
	for i, p := range phases {
		r.showProgress(ctx, s, p.step)
		res, err := p.run(ctx, s)
		if err != nil || !res.IsZero() {
			s.log.V(2).Info("Reconcile ends early", "phase", i, "requeueAfter", res.RequeueAfter)
			return res, err
		}
	}
	wi.Status.ObservedGeneration = wi.Generation
	if !s.exporterRenewAt.IsZero() {
		// The renewed certificate goes into a new plan then.
		return ctrl.Result{RequeueAfter: max(s.exporterRenewAt.Sub(r.Now()), time.Second)}, nil
	}
	return ctrl.Result{}, nil
}

// maxWorkers is the API's maximum of maxParallelConfigurations.
const maxWorkers = 200

// slotRequeue is how soon an instance waiting for a configuration slot is
// looked at again if no freed slot wakes it first.
const slotRequeue = 30 * time.Second

// progressMessages say what a host is doing at each step of its first
// configuration.
var progressMessages = map[string]outcome{
	wmcov1.ConditionReachable:       {reason: ReasonConnecting, message: "connecting over SSH"},
	wmcov1.ConditionPreflightPassed: {reason: ReasonCheckingHost, message: "checking the host"},
	wmcov1.ConditionConfigured:      {reason: ReasonPayloadTransfer, message: "uploading the payload and applying the node configuration"},
	wmcov1.ConditionNodeReady:       {reason: ReasonNodeNotFound, message: "waiting for the Node"},
}

// showProgress publishes the step a host enters during its first
// configuration, which takes minutes on real hosts, so that it can be
// followed with kubectl get wi: the step's condition, when it is not true
// yet, says the step is under way, and the status is summarised and
// patched at once. A Ready host's resync publishes nothing.
func (r *Reconciler) showProgress(ctx context.Context, s *scope, step string) {
	wi := s.wi
	if step == "" || wi.Status.Upgrade != nil {
		// An upgrade publishes its own steps (setUpgradeStep).
		return
	}
	if meta.IsStatusConditionTrue(wi.Status.Conditions, step) {
		return
	}
	if c := meta.FindStatusCondition(wi.Status.Conditions, step); c == nil || c.Reason == ReasonNotObserved {
		setCondition(wi, step, progressMessages[step])
	}
	r.publish(ctx, s, step)
}

// publish patches the status computed so far (summarised) at once, if it
// changed, and makes it the base of the reconcile's final patch: for a
// step that takes seconds, so that kubectl shows it while it runs. A
// failure is only logged; the final patch carries the status anyway.
func (r *Reconciler) publish(ctx context.Context, s *scope, step string) {
	wi := s.wi
	summarize(wi, false, false)
	if equality.Semantic.DeepEqual(wi.Status, s.base.Status) {
		return
	}
	if err := r.Client.Status().Patch(ctx, wi, client.MergeFrom(s.base)); err != nil {
		s.log.V(1).Info("Could not publish progress", "step", step, "error", err.Error())
		return
	}
	s.base = wi.DeepCopy()
}

// nodeConfig reads the WindowsNodeConfig singleton; without one, the
// defaults apply.
func (r *Reconciler) nodeConfig(ctx context.Context) (wmcov1.WindowsNodeConfigSpec, error) {
	cfg := &wmcov1.WindowsNodeConfig{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: wmcov1.WindowsNodeConfigName}, cfg)
	if apierrors.IsNotFound(err) {
		return nodeconfig.Defaulted(wmcov1.WindowsNodeConfigSpec{}), nil
	}
	if err != nil {
		return wmcov1.WindowsNodeConfigSpec{}, fmt.Errorf("read WindowsNodeConfig: %w", err)
	}
	return nodeconfig.Defaulted(cfg.Spec), nil
}

// SetupWithManager registers the controller: it watches WindowsInstances
// (spec, labels, annotations, deletion; not its own status writes), the
// Nodes of instances, the SSH key Secrets and the WindowsNodeConfig.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	switch {
	case r.Client == nil || r.APIReader == nil || r.Clientset == nil:
		return fmt.Errorf("WindowsInstance controller: Client, APIReader and Clientset are required")
	case r.Dialer == nil:
		return fmt.Errorf("WindowsInstance controller: Dialer is required")
	case r.Payloads == nil || len(r.Payloads.Entries()) == 0:
		return fmt.Errorf("WindowsInstance controller: a payload is required")
	case r.ServerVersion == nil:
		return fmt.Errorf("WindowsInstance controller: ServerVersion is required")
	case r.Tokens == nil:
		return fmt.Errorf("WindowsInstance controller: Tokens is required")
	case r.Recorder == nil:
		return fmt.Errorf("WindowsInstance controller: Recorder is required")
	case r.Config.Namespace == "":
		return fmt.Errorf("WindowsInstance controller: Config.Namespace is required")
	case r.ClusterSource == nil && (r.Cluster.APIServerURL == "" || len(r.Cluster.CACertPEM) == 0):
		return fmt.Errorf("WindowsInstance controller: the API server URL and CA for kubelets are required")
	}
	if r.ClusterSource == nil {
		r.ClusterSource = core.StaticCluster(r.Cluster)
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	r.Recorder = core.Recorder(r.Recorder)
	r.wake = newWakeups()
	r.recordWrites()
	r.slots = newSlots(nodeconfig.DefaultMaxParallelConfigurations, r.wake.instance)
	r.conns = newConnCache(connIdleTimeout, connCacheSize)
	r.retries = newFloorLimiter(retryLimiter())
	if n, ok := r.ServerVersion.(core.VersionNotifier); ok {
		n.OnChange(func(_, _ string) { r.wake.everyInstance() })
	}
	if n, ok := r.ClusterSource.(core.ClusterNotifier); ok {
		n.OnChange(r.wake.clusterChanged)
	}
	specOrDeletion := predicate.Or(
		predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{},
		predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			return !e.ObjectNew.GetDeletionTimestamp().IsZero() && e.ObjectOld.GetDeletionTimestamp().IsZero()
		}},
	)
	return ctrl.NewControllerManagedBy(mgr).
		Named("windowsinstance").
		For(&wmcov1.WindowsInstance{}, builder.WithPredicates(specOrDeletion)).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(nodeToInstance), builder.WithPredicates(nodeChangedPredicate())).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.secretToInstances)).
		// Spec changes only: the WindowsNodeConfig's status is written by
		// its own controller and changes nothing on the hosts.
		Watches(&wmcov1.WindowsNodeConfig{}, handler.EnqueueRequestsFromMapFunc(r.allInstances),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(r.wake.bell, handler.EnqueueRequestsFromMapFunc(r.wokenInstances))).
		// Enough workers for the largest maxParallelConfigurations the
		// API allows; the slots hold the configured bound.
		WithOptions(controller.Options{MaxConcurrentReconciles: maxWorkers, RateLimiter: r.retries}).
		Complete(r)
}

// retryLimiter spaces the retries of each instance whose reconcile failed
// (5 ms doubling up to 1000 s, as controller-runtime's default), with no
// bucket shared by all instances: controller-runtime's default also holds
// every retry to 10 per second over the whole controller, so 25 hosts
// refusing connections, retried at once, kept a good host's retry (a
// status conflict) waiting for seconds behind theirs.
func retryLimiter() workqueue.TypedRateLimiter[reconcile.Request] {
	return workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, 1000*time.Second)
}

// unreachableRetry is the least wait before an instance whose host did
// not answer on its SSH port is tried again. A host that refused the
// connection or did not answer will not have started its SSH server 5 ms
// later; retried at retryLimiter's pace, 25 such hosts made 50-70
// failed reconciles a second in their first 3 s (each a dial, a Warning
// event, a log line with its stack and a status patch), on the cores
// that the hosts which answer were joining with. After 8 failures retryLimiter's
// own wait is longer and rules.
const unreachableRetry = time.Second

// keyNotAuthorizedRetry is the least wait before a Machine's host that
// refused the key before it was ever reached (KeyNotAuthorizedYet) is
// tried again: its first boot writes the key seconds after sshd starts,
// and each attempt is a few logins the host refuses. retryLimiter's own
// wait rules once longer.
const keyNotAuthorizedRetry = 5 * time.Second

// floorLimiter is a rate limiter whose next wait for an instance may be
// raised by the reconcile that failed (atLeast), for failures whose
// cause does not go away in milliseconds.
type floorLimiter struct {
	workqueue.TypedRateLimiter[reconcile.Request]
	mu    sync.Mutex
	floor map[reconcile.Request]time.Duration
}

func newFloorLimiter(base workqueue.TypedRateLimiter[reconcile.Request]) *floorLimiter {
	return &floorLimiter{TypedRateLimiter: base, floor: map[reconcile.Request]time.Duration{}}
}

// atLeast makes the next wait of the instance name at least d. The
// reconcile that calls it must return an error (which brings When);
// Forget clears it too.
func (l *floorLimiter) atLeast(name string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.floor[reconcile.Request{NamespacedName: types.NamespacedName{Name: name}}] = d
}

// When is the base's wait, counted as a failure there, or the floor set
// for this retry when that is longer.
func (l *floorLimiter) When(r reconcile.Request) time.Duration {
	d := l.TypedRateLimiter.When(r)
	l.mu.Lock()
	f := l.floor[r]
	delete(l.floor, r)
	l.mu.Unlock()
	return max(d, f)
}

// Forget ends the instance's failures.
func (l *floorLimiter) Forget(r reconcile.Request) {
	l.TypedRateLimiter.Forget(r)
	l.mu.Lock()
	delete(l.floor, r)
	l.mu.Unlock()
}

// nodeChangedPredicate lets through the Node events the controller acts
// on: creation, deletion, a change of readiness, of labels, annotations or
// taints, of the pod subnet, or of the kubelet's version (an upgrade waits
// for it). A kubelet's routine status reports change
// none of these and cost the host no SSH connection.
func nodeChangedPredicate() predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*corev1.Node)
			n, ok2 := e.ObjectNew.(*corev1.Node)
			if !ok1 || !ok2 {
				return true
			}
			return readyStatus(o) != readyStatus(n) ||
				!maps.Equal(o.Labels, n.Labels) || !maps.Equal(o.Annotations, n.Annotations) ||
				!equality.Semantic.DeepEqual(o.Spec.Taints, n.Spec.Taints) || o.Spec.PodCIDR != n.Spec.PodCIDR ||
				o.Status.NodeInfo.KubeletVersion != n.Status.NodeInfo.KubeletVersion
		},
	}
}

func readyStatus(n *corev1.Node) corev1.ConditionStatus {
	if c := nodeReadyCondition(n); c != nil {
		return c.Status
	}
	return ""
}

// nodeToInstance maps a Node to the instance named by its wmco.io/instance
// label (set at registration through --node-labels).
func nodeToInstance(_ context.Context, o client.Object) []reconcile.Request {
	name := o.GetLabels()[wmcov1.LabelInstance]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: name}}}
}

// secretToInstances maps a Secret to the instances whose SSH key it holds,
// so a fixed key is retried at once, and the Secret of windows_exporter's
// certificates (ExporterCertificates.Secret) to every instance.
func (r *Reconciler) secretToInstances(ctx context.Context, o client.Object) []reconcile.Request {
	var list wmcov1.WindowsInstanceList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	var out []reconcile.Request
	exporter := r.ExporterCertificates != nil && r.ExporterCertificates.Secret() == client.ObjectKeyFromObject(o)
	for _, wi := range list.Items {
		ref := r.secretRef(&wi)
		if exporter || (ref.Namespace == o.GetNamespace() && ref.Name == o.GetName()) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: wi.Name}})
		}
	}
	return out
}

func (r *Reconciler) allInstances(ctx context.Context, _ client.Object) []reconcile.Request {
	var list wmcov1.WindowsInstanceList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, wi := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: wi.Name}})
	}
	return out
}

// instancesBehindCluster are the instances whose last reconcile started
// with other cluster facts than the current ones: an instance reconciled
// since the change (its creation at start-up, say) is not woken again,
// which would cost it another SSH connection.
func (r *Reconciler) instancesBehindCluster(ctx context.Context, o client.Object) []reconcile.Request {
	current := clusterKey(r.ClusterSource.ClusterFacts())
	return slices.DeleteFunc(r.allInstances(ctx, o), func(req reconcile.Request) bool {
		seen, ok := r.clusterSeen.Load(req.Name)
		return ok && seen == current
	})
}

// clusterKey identifies cluster facts and a problem.
func clusterKey(facts nodeconfig.ClusterFacts, problem string) string {
	data, err := json.Marshal(facts)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(append(data, problem...))
	return hex.EncodeToString(sum[:])
}

// clusterProblemRequeue is how soon an instance held by a problem of the
// cluster's configuration is looked at again if no change wakes it first.
const clusterProblemRequeue = 15 * time.Second

// secretRef is the instance's credentials reference with defaults applied.
func (r *Reconciler) secretRef(wi *wmcov1.WindowsInstance) wmcov1.SecretKeyReference {
	ref := wi.Spec.CredentialsSecretRef
	if ref.Namespace == "" {
		ref.Namespace = r.Config.Namespace
	}
	if ref.Name == "" {
		ref.Name = wmcov1.DefaultCredentialsSecretName
	}
	if ref.Key == "" {
		ref.Key = wmcov1.DefaultCredentialsSecretKey
	}
	return ref
}

// event records an Event on the instance; its action is the reconcile.
func (r *Reconciler) event(s *scope, warning bool, reason, format string, args ...any) {
	t := corev1.EventTypeNormal
	if warning {
		t = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(s.wi, nil, t, reason, "Reconcile", format, args...)
}
