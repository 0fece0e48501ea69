package instance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/metrics"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// Reasons of the Upgrading and PayloadCompatible conditions.
const (
	ReasonUpToDate          = "UpToDate"
	ReasonUpgradeWaiting    = "UpgradeWaitingForSlot"
	ReasonUpgradeDraining   = "UpgradeDraining"
	ReasonUpgradeApplying   = "UpgradeApplying"
	ReasonUpgradeNodeWait   = "UpgradeWaitingForNode"
	ReasonRollingBack       = "RollingBack"
	ReasonUpgradeSucceeded  = "UpgradeSucceeded"
	ReasonUpgradeFailed     = "UpgradeFailed"
	ReasonPayloadCompatible = "PayloadSelected"
	ReasonNoPayload         = "NoCompatiblePayload"

	// ReasonUpgradeAbandoned: the payload the upgrade went to is no longer
	// shipped by the operator and the host had not moved to it: the
	// upgrade was given up, the host left on its payload (also the
	// Event's reason). The selected payload's upgrade follows.
	ReasonUpgradeAbandoned = "UpgradeAbandoned"
)

// rollbackTimeout bounds `wicd rollback`: stopping and starting every
// service of a plan, each within the default step deadline.
const rollbackTimeout = 16 * wicdapi.DefaultStepTimeout

// upgradeRequeue is how soon a host waiting for an upgrade slot looks
// again if no freed slot wakes it first.
const upgradeRequeue = 30 * time.Second

// disruptive are the components whose change needs the Node drained: a
// new kubelet, kube-proxy, container runtime or pod network restarts what
// pods run on. The others (windows_exporter, csi-proxy, the agent) are
// replaced in place, restarting only their own services.
var disruptive = map[payload.Component]bool{
	payload.ComponentKubelet: true, payload.ComponentKubeProxy: true, payload.ComponentContainerd: true,
	payload.ComponentCNI: true, payload.ComponentHybridOverlay: true, payload.ComponentKubeLogRunner: true,
}

// upgradeKind is how a host moves from its applied payload to m, given
// the sha256 of each file on the host (facts): changed lists the
// components whose files differ, and drain is true when one of them is
// disruptive (or the host's files of the applied payload are unknown).
func upgradeKind(m *payload.Manifest, applied string, hostFiles map[string]string) (changed []payload.Component, drain bool) {
	have := foldKeys(hostFiles)
	for _, f := range m.Files {
		old, ok := have[strings.ToLower(payload.HostPath(applied, f.Path))]
		if ok && strings.EqualFold(old, f.SHA256) {
			continue
		}
		if !slices.Contains(changed, f.Component) {
			changed = append(changed, f.Component)
		}
		if !ok || disruptive[f.Component] {
			drain = true
		}
	}
	slices.Sort(changed)
	return changed, drain
}

func foldKeys(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// setPayloadCompatibleCondition records whether a payload fits the API
// server.
func setPayloadCompatibleCondition(wi *wmcov1.WindowsInstance, selected payload.Entry, err error) {
	if err != nil {
		setCondition(wi, wmcov1.ConditionPayloadCompatible, outcome{reason: ReasonNoPayload, message: err.Error() + "; no host is touched until a payload fits (upgrade the operator, or the control plane)"})
		return
	}
	setCondition(wi, wmcov1.ConditionPayloadCompatible, outcome{ok: true, reason: ReasonPayloadCompatible, message: fmt.Sprintf(
		"payload %s (Kubernetes %s) fits the API server", selected.Manifest.Version, selected.Manifest.KubernetesVersion)})
}

// setUpgradingCondition records an upgrade's progress: True while it
// runs, False once done or failed.
func setUpgradingCondition(wi *wmcov1.WindowsInstance, running bool, reason, message string) {
	status := metav1.ConditionFalse
	if running {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&wi.Status.Conditions, metav1.Condition{
		Type: wmcov1.ConditionUpgrading, Status: status, Reason: reason,
		Message: core.Truncate(message, core.MaxConditionMessageBytes), ObservedGeneration: wi.Generation,
	})
}

// reconcileUpgrade chooses the payload this reconcile converges the host
// to (s.target) and, when the host's applied payload differs from the
// selected one, runs the steps of its upgrade that come before the new
// payload is staged and applied:
//   - a change of only non-disruptive components (see upgradeKind) is
//     applied in place, restarting only the affected services;
//   - otherwise the host takes an upgrade slot (at most maxUnavailable at
//     once, recorded in status.upgrade), and its Node is cordoned and
//     drained first. Without a free slot it keeps its applied payload.
//
// A payload that failed on this host and was rolled back is not tried
// again until another is selected or the spec changes. An upgrade whose
// payload another replaces before it is applied goes to the new one
// (continueUpgrade), weighed again when it was in place.
func (r *Reconciler) reconcileUpgrade(ctx context.Context, s *scope) (ctrl.Result, error) {
	wi := s.wi
	sel := s.selected.Manifest
	s.target = s.selected
	if u := wi.Status.Upgrade; u != nil {
		return r.continueUpgrade(ctx, s, u)
	}
	if s.applied == "" || s.applied == sel.Version {
		// The outcome of the last upgrade stays on record until another
		// one; a host that never upgraded is up to date.
		if c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionUpgrading); s.applied != "" && c == nil {
			setUpgradingCondition(wi, false, ReasonUpToDate, "the host runs the selected payload "+sel.Version)
		}
		return ctrl.Result{}, nil
	}
	// The host runs another payload than the selected one.
	s.target = r.appliedEntry(s)
	if f := wi.Status.FailedUpgrade; f != nil && f.Version == sel.Version && f.Generation == wi.Generation {
		// Keep the host as it is: the failure is on record (condition
		// UpgradeFailed, Event); retrying would fail the same way.
		return ctrl.Result{}, nil
	}
	changed, drain := upgradeKind(sel, s.applied, s.facts.Files)
	u := &wmcov1.UpgradeStatus{
		From: s.applied, To: sel.Version, Progress: s.applied + " → " + sel.Version,
		StartedAt: metav1.NewTime(r.Now()), InPlace: !drain,
	}
	if !drain {
		s.log.Info("Upgrading in place", "from", u.From, "to", u.To, "components", changed)
		u.Step = wmcov1.UpgradeStepApplying
		if err := r.recordUpgrade(ctx, s, u); err != nil {
			return ctrl.Result{}, err
		}
		r.event(s, false, "UpgradeStarted", "Upgrading %s in place (changed: %s; no drain)", u.Progress, componentList(changed))
		setUpgradingCondition(wi, true, ReasonUpgradeApplying, fmt.Sprintf("upgrading %s in place: %s", u.Progress, componentList(changed)))
		s.target = s.selected
		return ctrl.Result{}, nil
	}
	u.Step = wmcov1.UpgradeStepDraining
	ok, holders, limit, err := r.takeUpgradeSlot(ctx, s, u)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !ok {
		setUpgradingCondition(wi, true, ReasonUpgradeWaiting, fmt.Sprintf(
			"waiting for an upgrade slot to go %s: %d of at most %d hosts are upgrading (%s; WindowsNodeConfig spec.maxUnavailable)",
			u.Progress, len(holders), limit, strings.Join(holders, ", ")))
		// A freed slot wakes every instance; the requeue is a safety net.
		return ctrl.Result{RequeueAfter: upgradeRequeue}, nil
	}
	s.log.Info("Upgrading", "from", u.From, "to", u.To, "components", changed)
	r.event(s, false, "UpgradeStarted", "Upgrading %s (changed: %s): cordoning and draining the Node", u.Progress, componentList(changed))
	return r.continueUpgrade(ctx, s, wi.Status.Upgrade)
}

// appliedEntry is the catalog's entry of the host's applied payload, to
// keep the host's configuration current while it waits for its upgrade;
// or an empty entry (leave the host as it is) when the catalog lacks it or
// the API server no longer allows it (its plan would not render).
func (r *Reconciler) appliedEntry(s *scope) payload.Entry {
	e, ok := r.Payloads.Get(s.applied)
	if !ok || payload.CheckSkew(e.Manifest.KubernetesVersion, s.server) != nil {
		return payload.Entry{}
	}
	return e
}

// continueUpgrade runs the step the upgrade u is at.
func (r *Reconciler) continueUpgrade(ctx context.Context, s *scope, u *wmcov1.UpgradeStatus) (ctrl.Result, error) {
	wi := s.wi
	target, ok := r.Payloads.Get(u.To)
	if !ok {
		// The operator no longer ships the payload the upgrade went to
		// (it was itself replaced mid-upgrade): roll back if the host
		// moved, else give the upgrade up.
		why := "payload " + u.To + " is no longer shipped by the operator"
		if s.applied == u.To {
			return r.rollback(ctx, s, u, why)
		}
		return ctrl.Result{}, r.finishUpgrade(ctx, s, u, upgradeAbandoned, why)
	}
	if u.Step != wmcov1.UpgradeStepRollingBack && u.To != s.selected.Manifest.Version && s.applied != u.To {
		// Another payload was selected before this one was applied:
		// go there instead, in the same slot.
		if _, drain := upgradeKind(s.selected.Manifest, s.applied, s.facts.Files); u.InPlace && drain {
			// An in-place upgrade holds no slot and drains nothing; the
			// new payload changes what pods run on (a kubelet, a
			// container runtime): it is an upgrade of its own, which
			// waits for a slot and drains the Node like any such.
			s.log.Info("Retargeted upgrade needs a drain; starting it anew", "from", u.To, "to", s.selected.Manifest.Version)
			wi.Status.Upgrade = nil
			return r.reconcileUpgrade(ctx, s)
		}
		s.log.Info("Retargeting upgrade", "from", u.To, "to", s.selected.Manifest.Version)
		u.To, u.Progress = s.selected.Manifest.Version, u.From+" → "+s.selected.Manifest.Version
		target = s.selected
	}
	s.target = target
	switch u.Step {
	case wmcov1.UpgradeStepRollingBack:
		return r.rollback(ctx, s, u, u.Reason)
	case wmcov1.UpgradeStepDraining:
		setUpgradingCondition(wi, true, ReasonUpgradeDraining, "draining the Node to go "+u.Progress)
		node, err := r.getNode(ctx, wi.Status.NodeName)
		if err != nil {
			return ctrl.Result{}, err
		}
		if node != nil && core.OwnsNode(wi, node) && !node.Spec.Unschedulable && !u.Cordoned {
			// Record before cordoning that the operator did it, so that
			// only its own cordon is undone.
			u.Cordoned = true
			if err := r.recordUpgrade(ctx, s, u); err != nil {
				return ctrl.Result{}, err
			}
		}
		if res, err := r.drain(ctx, s, wi.Status.NodeName); err != nil || !res.IsZero() {
			return res, err
		}
		u.Step = wmcov1.UpgradeStepApplying
		// The condition goes with the step: a later reconcile that stops
		// before this phase (a failed preflight) must not still say
		// draining.
		setUpgradingCondition(wi, true, ReasonUpgradeApplying, "applying payload "+u.To+" ("+u.Progress+")")
		if err := r.recordUpgrade(ctx, s, u); err != nil {
			return ctrl.Result{}, err
		}
		fallthrough
	case wmcov1.UpgradeStepApplying:
		setUpgradingCondition(wi, true, ReasonUpgradeApplying, "applying payload "+u.To+" ("+u.Progress+")")
	case wmcov1.UpgradeStepWaitingForNode:
		setUpgradingCondition(wi, true, ReasonUpgradeNodeWait, "waiting for the Node to be Ready with the new kubelet ("+u.Progress+")")
	}
	return ctrl.Result{}, nil
}

// upgradeApplied is called once the plan of the upgrade's payload is
// applied: the Node is then waited for.
func (r *Reconciler) upgradeApplied(ctx context.Context, s *scope) error {
	u := s.wi.Status.Upgrade
	if u == nil || u.Step != wmcov1.UpgradeStepApplying {
		return nil
	}
	now := metav1.NewTime(r.Now())
	u.Step, u.AppliedAt = wmcov1.UpgradeStepWaitingForNode, &now
	setUpgradingCondition(s.wi, true, ReasonUpgradeNodeWait, "waiting for the Node to be Ready with the new kubelet ("+u.Progress+")")
	return r.recordUpgrade(ctx, s, u)
}

// upgradeApplyFailed decides what a failed apply means during an upgrade:
// a service of the new payload that does not start rolls the host back;
// anything else (a dropped connection) is retried.
func (r *Reconciler) upgradeApplyFailed(ctx context.Context, s *scope, applyErr error) (ctrl.Result, error) {
	u := s.wi.Status.Upgrade
	var we *wicdapi.Error
	if u == nil || !errors.As(applyErr, &we) || we.Code != wicdapi.CodeServiceFailed {
		return ctrl.Result{}, applyErr
	}
	// Apply saved the failed plan as the applied one before it began.
	s.applied = u.To
	return r.rollback(ctx, s, u, "a service of payload "+u.To+" failed: "+we.Message)
}

// reconcileUpgradeDone ends an upgrade once the Node is Ready with the
// new kubelet, or rolls it back past the upgrade timeout. It runs after
// reconcileNode, which returned early if the Node is not Ready.
func (r *Reconciler) reconcileUpgradeDone(ctx context.Context, s *scope) (ctrl.Result, error) {
	u := s.wi.Status.Upgrade
	if u == nil {
		return ctrl.Result{}, nil
	}
	want := kubeletVersion(s.target.Manifest)
	if got := s.wi.Status.KubeletVersion; !u.InPlace && want != "" && got != want {
		return r.upgradeNodeNotReady(ctx, s, u, fmt.Sprintf("the Node's kubelet reports %s, not %s", got, want))
	}
	return ctrl.Result{}, r.finishUpgrade(ctx, s, u, upgradeSucceeded, "")
}

// upgradeNodeNotReady waits for the Node within the upgrade timeout, and
// rolls back after it.
func (r *Reconciler) upgradeNodeNotReady(ctx context.Context, s *scope, u *wmcov1.UpgradeStatus, why string) (ctrl.Result, error) {
	if u.AppliedAt == nil || u.Step != wmcov1.UpgradeStepWaitingForNode {
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	timeout := s.config.UpgradeTimeout.Duration
	left := u.AppliedAt.Add(timeout).Sub(r.Now())
	if left > 0 {
		// The Node watch brings the next reconcile; the requeue makes
		// the deadline.
		return ctrl.Result{RequeueAfter: min(left, time.Minute)}, nil
	}
	return r.rollback(ctx, s, u, fmt.Sprintf("the Node was not Ready with payload %s within %s: %s", u.To, timeout, why))
}

// rollback points the host's services back at the previous payload's
// folder (`wicd rollback`), waits for the Node to be Ready again, then
// ends the upgrade as failed. It is idempotent across restarts: the
// host's applied payload tells whether the agent already rolled back.
func (r *Reconciler) rollback(ctx context.Context, s *scope, u *wmcov1.UpgradeStatus, reason string) (ctrl.Result, error) {
	wi := s.wi
	if u.Step != wmcov1.UpgradeStepRollingBack {
		s.log.Info("Rolling back upgrade", "from", u.To, "to", u.From, "reason", reason)
		u.Step, u.Reason = wmcov1.UpgradeStepRollingBack, reason
		if err := r.recordUpgrade(ctx, s, u); err != nil {
			return ctrl.Result{}, err
		}
		r.event(s, true, "UpgradeFailed", "Upgrade %s failed: %s; rolling back", u.Progress, reason)
	}
	setUpgradingCondition(wi, true, ReasonRollingBack, "rolling back to "+u.From+": "+reason)
	s.target = payload.Entry{}
	if s.applied != u.From && s.session != nil {
		var res wicdapi.ApplyResult
		// Rolling back restarts what the failed apply did: its deadline.
		if err := r.runAgentAt(ctx, s, wicdapi.AgentPath, rollbackTimeout, &res, wicdapi.RollbackArg); err != nil {
			var we *wicdapi.Error
			if errors.As(err, &we) && we.Code == wicdapi.CodeNotFound {
				// Nothing to go back to (the host kept no earlier plan):
				// the upgrade ends failed, the host on the new payload.
				return ctrl.Result{}, r.finishUpgrade(ctx, s, u, upgradeNotRolledBack, reason)
			}
			setConfiguredCondition(wi, outcome{reason: ReasonApplyFailed, message: "roll back: " + err.Error()})
			return ctrl.Result{}, err
		}
		s.applied = u.From
		s.log.Info("Rolled back", "payload", u.From, "changes", len(res.Changes))
		metrics.UpgradeRollbacks.Inc()
	}
	node, err := r.getNode(ctx, wi.Status.NodeName)
	if err != nil {
		return ctrl.Result{}, err
	}
	if node == nil || readyStatus(node) != corev1.ConditionTrue {
		// The Node watch brings the next reconcile.
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	wi.Status.KubeletVersion = node.Status.NodeInfo.KubeletVersion
	return ctrl.Result{}, r.finishUpgrade(ctx, s, u, upgradeRolledBack, reason)
}

// upgradeEnd is how an upgrade ended.
type upgradeEnd int

const (
	// upgradeSucceeded: the Node is Ready on the new payload.
	upgradeSucceeded upgradeEnd = iota
	// upgradeRolledBack: the host was rolled back, its Node is Ready on
	// the previous payload again.
	upgradeRolledBack
	// upgradeAbandoned: the upgrade was given up before the host moved
	// (its payload is no longer shipped).
	upgradeAbandoned
	// upgradeNotRolledBack: the upgrade failed and the host, which kept
	// no previous plan, could not be rolled back: it stays on the new
	// payload.
	upgradeNotRolledBack
)

// finishUpgrade ends the upgrade u as end says (why: the failure or the
// reason to give it up): it uncordons the Node if the upgrade cordoned it
// (after a failure not rolled back, only a Node that runs the new payload
// and is Ready: see settleCordon), records the outcome, removes payload
// folders older than the previous one after a success, frees the slot and
// wakes the instances waiting for one.
func (r *Reconciler) finishUpgrade(ctx context.Context, s *scope, u *wmcov1.UpgradeStatus, end upgradeEnd, why string) error {
	wi := s.wi
	kept := "" // the Node left cordoned
	if u.Cordoned {
		var err error
		if end == upgradeNotRolledBack {
			kept, err = r.settleCordon(ctx, s, u)
		} else {
			err = r.uncordon(ctx, s)
		}
		if err != nil {
			return err
		}
	}
	meta.RemoveStatusCondition(&wi.Status.Conditions, wmcov1.ConditionDraining)
	took := r.Now().Sub(u.StartedAt.Time)
	switch end {
	case upgradeRolledBack:
		wi.Status.FailedUpgrade = &wmcov1.FailedUpgrade{Version: u.To, Reason: why, Time: metav1.NewTime(r.Now()), Generation: wi.Generation}
		setUpgradingCondition(wi, false, ReasonUpgradeFailed, fmt.Sprintf("upgrade %s failed and was rolled back: %s; payload %s is not tried again on this host until another payload is selected or the spec changes", u.Progress, why, u.To))
		r.event(s, true, "RolledBack", "Upgrade %s rolled back: the Node is Ready on payload %s again after %s", u.Progress, u.From, took.Round(time.Second))
		metrics.UpgradeDuration.WithLabelValues("rolledback").Observe(took.Seconds())
	case upgradeNotRolledBack:
		// The failure is on record; neither a success nor a rollback
		// is counted.
		wi.Status.FailedUpgrade = &wmcov1.FailedUpgrade{Version: u.To, Reason: why, Time: metav1.NewTime(r.Now()), Generation: wi.Generation}
		stays := "the host stays on payload " + u.To
		if kept != "" {
			stays += "; Node " + kept + " stays cordoned until it is uncordoned by hand"
		}
		setUpgradingCondition(wi, false, ReasonUpgradeFailed, fmt.Sprintf(
			"upgrade %s failed and could not be rolled back (the host kept no previous plan): %s; %s", u.Progress, why, stays))
		r.event(s, true, "NotRolledBack", "Upgrade %s failed and could not be rolled back (the host kept no previous plan): %s", u.Progress, stays)
	case upgradeAbandoned:
		// Neither a success nor the host's failure: no duration is
		// recorded, a failure on record stays.
		msg := fmt.Sprintf("upgrade %s given up: %s; the host stays on payload %s", u.Progress, why, u.From)
		setUpgradingCondition(wi, false, ReasonUpgradeAbandoned, msg)
		r.event(s, true, ReasonUpgradeAbandoned, "Upgrade %s given up after %s: %s; the host stays on payload %s", u.Progress, took.Round(time.Second), why, u.From)
	default:
		wi.Status.FailedUpgrade = nil
		setUpgradingCondition(wi, false, ReasonUpgradeSucceeded, fmt.Sprintf("upgraded %s in %s", u.Progress, took.Round(time.Second)))
		r.event(s, false, "UpgradeSucceeded", "Upgraded %s in %s", u.Progress, took.Round(time.Second))
		kind := "drained"
		if u.InPlace {
			kind = "inplace"
		}
		metrics.UpgradeDuration.WithLabelValues(kind).Observe(took.Seconds())
		r.prune(ctx, s)
	}
	wi.Status.Upgrade = nil
	if err := r.patchStatusNow(ctx, s, false); err != nil {
		return err
	}
	r.wake.everyInstance()
	return nil
}

// prune removes payload folders other than the applied and the previous
// one. Files a process still holds stay until the next upgrade; a
// failure is only logged: nothing depends on it.
func (r *Reconciler) prune(ctx context.Context, s *scope) {
	if s.session == nil {
		return
	}
	var res wicdapi.PruneResult
	if err := r.runAgentAt(ctx, s, wicdapi.AgentPath, wicdapi.PruneTimeout, &res, wicdapi.PruneArg); err != nil {
		s.log.Info("Could not remove old payload folders", "error", err.Error())
		return
	}
	if len(res.Removed) > 0 || len(res.Kept) > 0 {
		s.log.V(1).Info("Removed old payload folders", "removed", res.Removed, "inUse", len(res.Kept))
	}
}

// settleCordon decides the cordon of an upgrade that failed and could
// not be rolled back: the Node is uncordoned only if the new payload's
// apply finished (its services started: u.AppliedAt) and the Node is
// Ready; the Ready condition of a Node whose new services failed to start
// is the old kubelet's, not yet expired. Otherwise the Node stays cordoned
// and loses the operator's mark, which hands the cordon over to an admin:
// nothing uncordons it by itself later. It returns the name of a Node
// left cordoned.
func (r *Reconciler) settleCordon(ctx context.Context, s *scope, u *wmcov1.UpgradeStatus) (string, error) {
	node, err := r.ownedNode(ctx, s.wi, s.wi.Status.NodeName)
	if err != nil || node == nil {
		return "", err
	}
	if u.AppliedAt != nil && readyStatus(node) == corev1.ConditionTrue {
		return "", r.setUnschedulable(ctx, s, node, false)
	}
	if !node.Spec.Unschedulable {
		// Uncordoned by someone else meanwhile.
		return "", nil
	}
	return node.Name, r.unmarkCordon(ctx, s, node)
}

// uncordon makes the instance's Node schedulable again.
func (r *Reconciler) uncordon(ctx context.Context, s *scope) error {
	node, err := r.ownedNode(ctx, s.wi, s.wi.Status.NodeName)
	if err != nil || node == nil {
		return err
	}
	return r.setUnschedulable(ctx, s, node, false)
}

// takeUpgradeSlot records u in the instance's status if fewer than
// maxUnavailable instances hold an upgrade slot (status.upgrade of a
// rolling upgrade), reading every instance live. Workers of this process
// take slots one at a time; the status write carries the resourceVersion
// it was computed from. It returns the holders and the limit when no slot
// is free.
func (r *Reconciler) takeUpgradeSlot(ctx context.Context, s *scope, u *wmcov1.UpgradeStatus) (bool, []string, int, error) {
	r.upgradeMu.Lock()
	defer r.upgradeMu.Unlock()
	var list wmcov1.WindowsInstanceList
	if err := r.APIReader.List(ctx, &list); err != nil {
		return false, nil, 0, fmt.Errorf("list instances for upgrade slots: %w", err)
	}
	limit := nodeconfig.MaxUnavailable(s.config, len(list.Items))
	holders := slotHolders(list.Items, s.wi.Name)
	if len(holders) >= limit {
		return false, holders, limit, nil
	}
	s.wi.Status.Upgrade = u
	if err := r.patchStatusNow(ctx, s, true); err != nil {
		return false, nil, 0, err
	}
	return true, nil, limit, nil
}

// slotHolders names the instances other than self holding an upgrade slot.
func slotHolders(items []wmcov1.WindowsInstance, self string) []string {
	var out []string
	for _, wi := range items {
		if wi.Name != self && wi.Status.Upgrade != nil && !wi.Status.Upgrade.InPlace {
			out = append(out, wi.Name)
		}
	}
	slices.Sort(out)
	return out
}

// recordUpgrade writes status.upgrade at once: a step of an upgrade must
// be on record before the operator acts on it, so that a restarted
// operator resumes it.
func (r *Reconciler) recordUpgrade(ctx context.Context, s *scope, u *wmcov1.UpgradeStatus) error {
	s.wi.Status.Upgrade = u
	return r.patchStatusNow(ctx, s, false)
}

// patchStatusNow patches the status computed so far (summarised) and
// makes it the base of the reconcile's final patch. With optimistic, it
// fails on a conflict with a write it did not see.
func (r *Reconciler) patchStatusNow(ctx context.Context, s *scope, optimistic bool) error {
	summarize(s.wi, false, false)
	patch := client.MergeFrom(s.base)
	if optimistic {
		patch = client.MergeFromWithOptions(s.base, client.MergeFromWithOptimisticLock{})
	}
	if err := r.Client.Status().Patch(ctx, s.wi, patch); err != nil {
		return fmt.Errorf("record upgrade status: %w", err)
	}
	s.base = s.wi.DeepCopy()
	return nil
}

// kubeletVersion is the version m's kubelet reports: the manifest's
// record of kubelet.exe, else the payload's Kubernetes version.
func kubeletVersion(m *payload.Manifest) string {
	if m == nil {
		return ""
	}
	if f, ok := m.File(payload.KubeletPath); ok && f.Version != "" {
		return f.Version
	}
	return m.KubernetesVersion
}

func componentList(cs []payload.Component) string {
	if len(cs) == 0 {
		return "service settings only"
	}
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return strings.Join(out, ", ")
}
