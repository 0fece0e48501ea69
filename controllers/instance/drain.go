package instance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	policyv1client "k8s.io/client-go/kubernetes/typed/policy/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// The drain reads the pods of one Node and the budgets of their namespaces
// live (nothing of them is cached) and evicts the pods.
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods/eviction,verbs=create
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch

// Clientset is what the drain calls the API server through: the core
// group (a Node's Pods) and the policy group (evictions,
// PodDisruptionBudgets). client-go's *kubernetes.Clientset and
// *cluster.Clients have it; the operator uses the latter, which does not
// link a client of every API group.
type Clientset interface {
	CoreV1() corev1client.CoreV1Interface
	PolicyV1() policyv1client.PolicyV1Interface
}

const (
	payloadWICD       = payload.WICDPath
	featureContainers = wicdapi.FeatureContainers
)

// DefaultDrainTimeout is how long a drain may take before it is reported
// as timed out, when Reconciler.DrainTimeout is not set.
const DefaultDrainTimeout = 10 * time.Minute

const (
	// drainRequeue is how soon a drain with pods left looks again. No
	// watch brings it sooner: the operator neither watches nor caches the
	// cluster's pods, and a budget that allows an eviction again changes
	// nothing the controller watches.
	drainRequeue = 3 * time.Second
	// maxDrainSlowRequeue bounds the slower pace of a drain past its
	// deadline (a tenth of the deadline, at least drainRequeue).
	maxDrainSlowRequeue = time.Minute
	// maxNamedPods is how many pods a Draining message names.
	maxNamedPods = 5
)

// drainTimeout is the configured drain deadline, else the default.
func (r *Reconciler) drainTimeout() time.Duration {
	if r.DrainTimeout > 0 {
		return r.DrainTimeout
	}
	return DefaultDrainTimeout
}

// drain is the drain step of deconfiguring the instance's Node nodeName:
// it cordons the Node, evicts the pods on it that are not yet being
// evicted, records the progress in the Draining condition and returns a
// requeue while pods are left, never waiting for them. It returns a zero
// Result once no pod is left, or when there is no Node of the instance's
// to drain. Past the deadline it reports DrainTimedOut and keeps trying at
// a slower pace: a PodDisruptionBudget is never overridden.
func (r *Reconciler) drain(ctx context.Context, s *scope, nodeName string) (ctrl.Result, error) {
	node, err := r.ownedNode(ctx, s.wi, nodeName)
	if err != nil || node == nil {
		return ctrl.Result{}, err
	}
	if err := r.cordon(ctx, s, node); err != nil {
		return ctrl.Result{}, err
	}
	list, err := r.Clientset.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node.Name).String(),
	})
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("list pods of Node %s: %w", node.Name, err)
	}
	now := r.Now()
	left, stranded := splitStranded(podsToDrain(list.Items), nodeUnreachable(node), now)
	// What the condition said before this step (a copy: setting the
	// condition changes it in place).
	var prev metav1.Condition
	if c := meta.FindStatusCondition(s.wi.Status.Conditions, wmcov1.ConditionDraining); c != nil {
		prev = *c
	}
	progress := drainProgress{node: node.Name, timeout: r.drainTimeout()}
	for i := range stranded {
		progress.stranded = append(progress.stranded, podKey(&stranded[i]))
	}
	if len(left) == 0 {
		setDrainingCondition(s.wi, progress, now)
		if prev.Reason != ReasonDrained || prev.Message != progress.message() {
			// The first step to find this Node empty.
			s.log.Info("Drained node", "node", klog.KObj(node))
			r.event(s, false, "NodeDrained", "%s", progress.message())
		}
		return ctrl.Result{}, nil
	}

	started := drainStarted(s.wi, now)
	progress.elapsed = now.Sub(started)
	if prev.Status != metav1.ConditionTrue {
		s.log.Info("Draining node", "node", klog.KObj(node), "pods", len(left))
	}
	budgets := map[string][]policyv1.PodDisruptionBudget{}
	for i := range left {
		pod := &left[i]
		progress.left = append(progress.left, podLabel(pod))
		if pod.DeletionTimestamp != nil {
			// Being evicted already: it counts until it is gone.
			continue
		}
		if b := r.evict(ctx, s, pod, budgets); b != nil {
			progress.blocked = append(progress.blocked, *b)
		}
	}
	setDrainingCondition(s.wi, progress, started)
	if progress.timedOut() && prev.Reason != ReasonDrainTimedOut {
		r.event(s, true, ReasonDrainTimedOut, "%s", progress.message())
	}
	s.log.V(1).Info("Waiting for pods to leave node", "node", klog.KObj(node), "pods", len(progress.left), "blocked", len(progress.blocked))
	return ctrl.Result{RequeueAfter: progress.requeueAfter()}, nil
}

// cordon marks the Node unschedulable.
func (r *Reconciler) cordon(ctx context.Context, s *scope, node *corev1.Node) error {
	return r.setUnschedulable(ctx, s, node, true)
}

// setUnschedulable cordons (true) or uncordons (false) the Node, unless it
// already is so. A cordon the operator makes carries the annotation
// wmco.io/cordoned, written with it, and an uncordon removes it (also from
// a Node someone else uncordoned): a Node found cordoned already, by an
// admin, gets none, and endAbandonedDrain undoes only a marked cordon.
func (r *Reconciler) setUnschedulable(ctx context.Context, s *scope, node *corev1.Node, unschedulable bool) error {
	_, marked := node.Annotations[wmcov1.AnnotationCordoned]
	if node.Spec.Unschedulable == unschedulable && (unschedulable || !marked) {
		return nil
	}
	verb := "cordon"
	switch {
	case unschedulable:
		s.log.Info("Cordoning node", "node", klog.KObj(node))
	case node.Spec.Unschedulable:
		verb = "uncordon"
		s.log.Info("Uncordoning node", "node", klog.KObj(node))
	default:
		verb = "unmark"
		s.log.V(1).Info("Removing the cordon mark of an uncordoned node", "node", klog.KObj(node))
	}
	patch := client.MergeFrom(node.DeepCopy())
	node.Spec.Unschedulable = unschedulable
	if unschedulable {
		if node.Annotations == nil {
			node.Annotations = map[string]string{}
		}
		node.Annotations[wmcov1.AnnotationCordoned] = "true"
	} else {
		delete(node.Annotations, wmcov1.AnnotationCordoned)
	}
	if err := r.Client.Patch(ctx, node, patch); err != nil {
		return fmt.Errorf("%s Node %s: %w", verb, node.Name, err)
	}
	return nil
}

// unmarkCordon removes the operator's mark from the cordoned Node and
// leaves it cordoned: the cordon is someone else's to undo from then on.
func (r *Reconciler) unmarkCordon(ctx context.Context, s *scope, node *corev1.Node) error {
	if _, marked := node.Annotations[wmcov1.AnnotationCordoned]; !marked {
		return nil
	}
	s.log.Info("Leaving node cordoned", "node", klog.KObj(node))
	patch := client.MergeFrom(node.DeepCopy())
	delete(node.Annotations, wmcov1.AnnotationCordoned)
	if err := r.Client.Patch(ctx, node, patch); err != nil {
		return fmt.Errorf("unmark Node %s: %w", node.Name, err)
	}
	return nil
}

// endAbandonedDrain ends a drain whose reason is gone: a rename the spec
// went back on before it finished (reconcileAgent calls it whenever the
// host keeps its Node's name). While the instance holds an upgrade
// (status.upgrade), the Node's drain and cordon are the upgrade's, left
// to it. Otherwise the Draining condition goes, so that the next drain
// counts its deadline from its own start, and the operator's own cordon
// (wmco.io/cordoned) is undone; a Node someone else cordoned stays
// cordoned.
func (r *Reconciler) endAbandonedDrain(ctx context.Context, s *scope) error {
	wi := s.wi
	if wi.Status.Upgrade != nil || wi.Status.NodeName == "" {
		return nil
	}
	c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionDraining)
	draining := c != nil && c.Status == metav1.ConditionTrue
	// From the cache, which holds the operator's Nodes: a host whose
	// Node has not registered costs no live read each reconcile.
	node := &corev1.Node{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: wi.Status.NodeName}, node)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("get Node %s: %w", wi.Status.NodeName, err)
	}
	exists := err == nil && core.OwnsNode(wi, node)
	_, marked := node.Annotations[wmcov1.AnnotationCordoned]
	ours := exists && marked && node.Spec.Unschedulable
	switch {
	case exists && marked && !ours && !draining:
		// Uncordoned by someone else: the mark goes too, so that a later
		// cordon of theirs is not taken for the operator's.
		return r.setUnschedulable(ctx, s, node, false)
	case !draining && !ours:
		return nil
	}
	s.log.Info("Giving up a drain no longer needed", "node", wi.Status.NodeName, "cordonedByOperator", ours)
	switch {
	case ours:
		if err := r.setUnschedulable(ctx, s, node, false); err != nil {
			return err
		}
		r.event(s, false, ReasonDrainAbandoned, "Node %s no longer needs draining (no rename or upgrade needs it): uncordoned it", node.Name)
	case exists && node.Spec.Unschedulable:
		r.event(s, false, ReasonDrainAbandoned, "Node %s no longer needs draining (no rename or upgrade needs it); it stays cordoned: the operator did not cordon it", node.Name)
	case exists && marked:
		// Uncordoned by someone else meanwhile.
		if err := r.setUnschedulable(ctx, s, node, false); err != nil {
			return err
		}
	}
	meta.RemoveStatusCondition(&wi.Status.Conditions, wmcov1.ConditionDraining)
	return nil
}

// evict asks the API server to evict the pod (policy/v1 Eviction, which
// honours PodDisruptionBudgets) and returns what refused it, if anything.
// budgets caches the PodDisruptionBudgets of namespaces looked up in this
// step.
func (r *Reconciler) evict(ctx context.Context, s *scope, pod *corev1.Pod, budgets map[string][]policyv1.PodDisruptionBudget) *evictionBlock {
	s.log.V(1).Info("Evicting pod", "pod", klog.KObj(pod))
	err := r.Clientset.PolicyV1().Evictions(pod.Namespace).Evict(ctx, &policyv1.Eviction{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace},
		// Never a pod of the same name that replaced this one.
		DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}},
	})
	switch {
	case err == nil, apierrors.IsNotFound(err), apierrors.IsConflict(err):
		// Evicted, already gone, or replaced: the next step sees which.
		return nil
	case apierrors.IsTooManyRequests(err):
		// A budget refuses it (or the API server sheds load): name the
		// budgets that cover the pod.
		b := &evictionBlock{pod: podKey(pod), message: evictionRefusal(err)}
		pdbs, ok := budgets[pod.Namespace]
		if !ok {
			list, lerr := r.Clientset.PolicyV1().PodDisruptionBudgets(pod.Namespace).List(ctx, metav1.ListOptions{})
			if lerr != nil {
				s.log.V(1).Info("Could not list PodDisruptionBudgets", "namespace", pod.Namespace, "error", lerr.Error())
			} else {
				pdbs = list.Items
			}
			budgets[pod.Namespace] = pdbs
		}
		b.budgets = coveringBudgets(pod, pdbs)
		return b
	default:
		// The condition says it; the log only at V(1), as it repeats
		// every step.
		s.log.V(1).Info("Eviction failed", "pod", klog.KObj(pod), "error", err.Error())
		return &evictionBlock{pod: podKey(pod), message: err.Error()}
	}
}

// podsToDrain are the pods of a Node that a drain must see gone: all but
// DaemonSet pods (their controller tolerates the cordon and would put them
// back) and mirror pods (the API's copy of a static pod, which only the
// kubelet's own configuration removes). Terminating pods stay in: they
// count until they are gone. The result is sorted by namespace and name.
func podsToDrain(pods []corev1.Pod) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if isDaemonSetPod(&p) || isMirrorPod(&p) {
			continue
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b corev1.Pod) int { return strings.Compare(podKey(&a), podKey(&b)) })
	return out
}

var daemonSetKind = appsv1.SchemeGroupVersion.WithKind("DaemonSet").GroupKind()

// nodeUnreachable says whether the Node's kubelet has stopped reporting:
// the node lifecycle controller sets its Ready condition to Unknown
// (node.kubernetes.io/unreachable) once no heartbeat came within its
// grace period.
func nodeUnreachable(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionUnknown
		}
	}
	return false
}

// splitStranded takes out of pods those stranded on an unreachable Node:
// being deleted, and past the end of their grace period (a deletion's
// deletionTimestamp is the time it asked for plus the grace period). No
// kubelet is there to finish them; they stay terminating until their
// Node is deleted, so a drain that waited for them would never end, as
// kubectl drain's --skip-wait-for-delete-timeout and the Machine API's
// drain of an unreachable Node also find. A pod still within its grace
// period counts, as its kubelet may yet report.
func splitStranded(pods []corev1.Pod, unreachable bool, now time.Time) (left, stranded []corev1.Pod) {
	if !unreachable {
		return pods, nil
	}
	for _, p := range pods {
		if p.DeletionTimestamp != nil && !now.Before(p.DeletionTimestamp.Time) {
			stranded = append(stranded, p)
			continue
		}
		left = append(left, p)
	}
	return left, stranded
}

func isDaemonSetPod(p *corev1.Pod) bool {
	ref := metav1.GetControllerOf(p)
	return ref != nil && schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind).GroupKind() == daemonSetKind
}

func isMirrorPod(p *corev1.Pod) bool {
	_, ok := p.Annotations[corev1.MirrorPodAnnotationKey]
	return ok
}

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

// podLabel names a pod left on a Node, saying when it is terminating.
func podLabel(p *corev1.Pod) string {
	if p.DeletionTimestamp != nil {
		return podKey(p) + " (terminating)"
	}
	return podKey(p)
}

// coveringBudgets names the PodDisruptionBudgets of the pod's namespace
// whose selector selects the pod (policy/v1: an empty selector selects
// every pod, a null one none), sorted.
func coveringBudgets(pod *corev1.Pod, pdbs []policyv1.PodDisruptionBudget) []string {
	var out []string
	for i := range pdbs {
		pdb := &pdbs[i]
		if pdb.Namespace != pod.Namespace {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		out = append(out, pdb.Namespace+"/"+pdb.Name)
	}
	slices.Sort(out)
	return out
}

// evictionRefusal is why the API server refused an eviction: the
// disruption budget's own words when it gives them ("The disruption budget
// web needs 1 healthy pods and has 1 currently"), else the error's.
func evictionRefusal(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Details != nil {
		for _, c := range status.Status().Details.Causes {
			if c.Type == policyv1.DisruptionBudgetCause && c.Message != "" {
				return c.Message
			}
		}
	}
	return err.Error()
}

// evictionBlock is an eviction the API server refused in this step.
type evictionBlock struct {
	// pod is namespace/name.
	pod string
	// budgets are the PodDisruptionBudgets covering the pod (namespace/name).
	budgets []string
	// message is the API server's reason.
	message string
}

// drainProgress is what one step of a drain observed.
type drainProgress struct {
	node string
	// left are the pods still on the Node (podLabel), sorted.
	left []string
	// blocked are the evictions refused in this step.
	blocked []evictionBlock
	// stranded are the pods (podKey) past their grace period on the
	// unreachable Node (splitStranded): not waited for.
	stranded []string
	// elapsed is the time since the drain started; timeout its deadline.
	elapsed, timeout time.Duration
}

func (p drainProgress) timedOut() bool { return len(p.left) > 0 && p.elapsed >= p.timeout }

// reason is the Draining condition's reason.
func (p drainProgress) reason() string {
	switch {
	case len(p.left) == 0:
		return ReasonDrained
	case p.timedOut():
		return ReasonDrainTimedOut
	case slices.ContainsFunc(p.blocked, func(b evictionBlock) bool { return len(b.budgets) > 0 }):
		return ReasonDrainBlockedByPDB
	default:
		return ReasonDrainInProgress
	}
}

// message names the Node, the pods left (the first maxNamedPods) and the
// evictions refused with the budgets that refused them.
func (p drainProgress) message() string {
	if len(p.left) == 0 {
		if len(p.stranded) > 0 {
			return fmt.Sprintf("Node %s has no pods left to evict; %s left terminating past their grace period on the unreachable Node, which no kubelet will finish, and go with the Node: %s",
				p.node, plural(len(p.stranded), "pod"), nameList(p.stranded, maxNamedPods))
		}
		return fmt.Sprintf("Node %s has no pods left to evict", p.node)
	}
	var b strings.Builder
	if p.timedOut() {
		fmt.Fprintf(&b, "Node %s not drained within %s (draining for %s)", p.node, p.timeout, p.elapsed.Round(time.Second))
	} else {
		fmt.Fprintf(&b, "draining Node %s for %s", p.node, p.elapsed.Round(time.Second))
	}
	fmt.Fprintf(&b, ": %s left: %s", plural(len(p.left), "pod"), nameList(p.left, maxNamedPods))
	if len(p.blocked) == 0 {
		return b.String()
	}
	refusals := make([]string, 0, len(p.blocked))
	for _, bl := range p.blocked {
		switch {
		case len(bl.budgets) == 1:
			refusals = append(refusals, fmt.Sprintf("%s by PodDisruptionBudget %s (%s)", bl.pod, bl.budgets[0], bl.message))
		case len(bl.budgets) > 1:
			refusals = append(refusals, fmt.Sprintf("%s by PodDisruptionBudgets %s (%s)", bl.pod, strings.Join(bl.budgets, ", "), bl.message))
		default:
			refusals = append(refusals, fmt.Sprintf("%s (%s)", bl.pod, bl.message))
		}
	}
	fmt.Fprintf(&b, "; eviction refused: %s", nameList(refusals, maxNamedPods))
	return b.String()
}

// requeueAfter is when the drain looks again: soon while within its
// deadline (at the deadline at the latest, to report it), at a slower
// pace past it.
func (p drainProgress) requeueAfter() time.Duration {
	if p.timedOut() {
		return min(max(p.timeout/10, drainRequeue), maxDrainSlowRequeue)
	}
	if rest := p.timeout - p.elapsed; rest < drainRequeue {
		return rest
	}
	return drainRequeue
}

// nameList joins the first n names and says how many more there are.
func nameList(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// drainStarted is when the drain under way started: the Draining
// condition's last transition to True, which the status keeps across
// operator restarts; now for a drain that starts.
func drainStarted(wi *wmcov1.WindowsInstance, now time.Time) time.Time {
	c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionDraining)
	if c != nil && c.Status == metav1.ConditionTrue && !c.LastTransitionTime.IsZero() {
		return c.LastTransitionTime.Time
	}
	return now
}

// setDrainingCondition records a drain step. Following kstatus' polarity
// (Reconciling, Stalled), Draining is True while the work is under way,
// pods being left, and False with reason Drained when it is done; at is
// the transition time when the status changes: the start of a drain, or
// its end.
func setDrainingCondition(wi *wmcov1.WindowsInstance, p drainProgress, at time.Time) {
	status := metav1.ConditionTrue
	if len(p.left) == 0 {
		status = metav1.ConditionFalse
	}
	meta.SetStatusCondition(&wi.Status.Conditions, metav1.Condition{
		Type: wmcov1.ConditionDraining, Status: status, Reason: p.reason(),
		Message: core.Truncate(p.message(), core.MaxConditionMessageBytes), ObservedGeneration: wi.Generation,
		LastTransitionTime: metav1.NewTime(at),
	})
}
