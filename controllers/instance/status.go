package instance

import (
	"errors"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// Condition reasons. Terminal ones need a change of the spec or the Secret.
const (
	ReasonConnecting           = "Connecting"
	ReasonConnected            = "Connected"
	ReasonSecretNotFound       = "SecretNotFound"
	ReasonInvalidKey           = "InvalidPrivateKey"
	ReasonAuthenticationFailed = "AuthenticationFailed"
	ReasonHostKeyMismatch      = "HostKeyMismatch"
	ReasonUnreachable          = "Unreachable"
	ReasonConnectionFailed     = "ConnectionFailed"
	// ReasonInvalidAddress: spec.address, or what its name resolves to, is
	// an address the operator never connects to (link-local, multicast,
	// unspecified, broadcast).
	ReasonInvalidAddress = "InvalidAddress"
	// ReasonCredentialsNamespaceNotAllowed: credentialsSecretRef names a
	// namespace the operator may not read keys from.
	ReasonCredentialsNamespaceNotAllowed = "CredentialsNamespaceNotAllowed"

	ReasonCheckingHost    = "CheckingHost"
	ReasonPreflightPassed = "PreflightPassed"
	ReasonRebooting       = "Rebooting"
	// ReasonRenamingHost: the host reboots to take the computer name
	// spec.hostname asks for (also the Event's reason).
	ReasonRenamingHost = "RenamingHost"
	// ReasonHostnameNotApplied: the host was rebooted for the computer
	// name spec.hostname asks for and still runs under another; the
	// operator does not reboot it again.
	ReasonHostnameNotApplied = "HostnameNotApplied"

	ReasonPayloadTransfer = "PayloadTransfer"
	ReasonApplyingPlan    = "ApplyingPlan"
	ReasonApplyFailed     = "ApplyFailed"
	ReasonPlanApplied     = "PlanApplied"
	ReasonRenderFailed    = "RenderFailed"
	ReasonCleanupFailed   = "CleanupFailed"
	// ReasonHostAbandoned (a Warning Event): a deleted instance's host,
	// which could not be reached, was given up uncleaned
	// (wmcov1.AnnotationAbandonHost).
	ReasonHostAbandoned = "HostAbandoned"
	ReasonAgentFailed   = "AgentFailed"
	// ReasonPayloadTransferFailed: the upload of the payload (or of the
	// agent), or its copy on the host, failed; the message says why (a
	// full disk, a dropped connection). PayloadTransfer is the transfer
	// under way.
	ReasonPayloadTransferFailed = "PayloadTransferFailed"

	ReasonNodeNotFound     = "NodeNotRegistered"
	ReasonNodeNameConflict = "NodeNameConflict"
	ReasonNodeNotReady     = "NodeNotReady"
	ReasonNodeReady        = "NodeReady"

	ReasonPaused       = "Paused"
	ReasonReady        = "Ready"
	ReasonDeleting     = "Deprovisioning"
	ReasonNotObserved  = "NotObservedYet"
	ReasonWaitingSlot  = "WaitingForSlot"
	ReasonConfigNeeded = "ConfigurationNeeded"
	// ReasonClusterConfigIncomplete: the cluster's configuration does not
	// let a Windows host join (ClusterConfigCompatible).
	ReasonClusterConfigIncomplete = "ClusterConfigIncomplete"
	// ReasonClusterConfigRead: the cluster's configuration was read and
	// lets Windows hosts join.
	ReasonClusterConfigRead = "ClusterConfigRead"
	// ReasonClusterNetworkMismatch: the network the host would be given
	// (network type Flannel) does not match the cluster's kube-flannel
	// configuration or the Node's podCIDR (ClusterConfigCompatible; also
	// the Event's reason). The message names both values and where each
	// came from.
	ReasonClusterNetworkMismatch = "ClusterNetworkMismatch"
)

// Reasons of the Draining condition.
const (
	// ReasonDrainInProgress: pods are being evicted from the Node.
	ReasonDrainInProgress = "DrainInProgress"
	// ReasonDrainBlockedByPDB: a PodDisruptionBudget refuses an eviction;
	// the message names the pod and the budget.
	ReasonDrainBlockedByPDB = "DrainBlockedByPDB"
	// ReasonDrainTimedOut: pods are still left past the drain deadline;
	// evictions are still tried, at a slower pace, never forced.
	ReasonDrainTimedOut = "DrainTimedOut"
	// ReasonDrained: no pod is left to evict (Draining is False).
	ReasonDrained = "Drained"
	// ReasonDrainAbandoned (an Event): a drain no longer needed (a rename
	// the spec went back on) was given up, the Draining condition removed
	// and the operator's cordon undone.
	ReasonDrainAbandoned = "DrainAbandoned"
)

// terminalReasons stop retries until the spec, the Secret or the
// WindowsNodeConfig changes (each is watched): the instance is Stalled.
var terminalReasons = map[string]bool{
	ReasonSecretNotFound: true, ReasonInvalidKey: true, ReasonAuthenticationFailed: true,
	ReasonHostKeyMismatch: true, ReasonKeyRotationFailed: true, wicdapi.ReasonUnsupported: true, wicdapi.ReasonBadHostname: true,
	ReasonRenderFailed: true, ReasonNodeNameConflict: true, ReasonInvalidAddress: true,
	ReasonCredentialsNamespaceNotAllowed: true,
}

// credentialsNamespaceAllowed tells whether the SSH key may be read from
// namespace: the operator's own, or one listed in the WindowsNodeConfig's
// spec.credentialNamespaces (allowed).
func credentialsNamespaceAllowed(namespace, operatorNamespace string, allowed []string) outcome {
	if namespace == operatorNamespace || slices.Contains(allowed, namespace) {
		return outcome{ok: true}
	}
	return outcome{reason: ReasonCredentialsNamespaceNotAllowed, message: fmt.Sprintf(
		"credentialsSecretRef names namespace %s: SSH keys are read only from the operator's namespace %s and the namespaces listed in WindowsNodeConfig %s spec.credentialNamespaces",
		namespace, operatorNamespace, wmcov1.WindowsNodeConfigName)}
}

// outcome is what a phase observed, for its condition.
type outcome struct {
	ok      bool
	reason  string
	message string
}

func (o outcome) terminal() bool { return !o.ok && terminalReasons[o.reason] }

// classifyConnectError sorts an SSH dial error into a condition reason.
func classifyConnectError(err error) outcome {
	var auth *remote.AuthError
	var mismatch *remote.HostKeyMismatchError
	var unreachable *remote.UnreachableError
	var forbidden *remote.ForbiddenAddressError
	var rotation *keyRotationError
	var notYet *keyNotAuthorizedYetError
	switch {
	case errors.As(err, &forbidden):
		return outcome{reason: ReasonInvalidAddress, message: forbidden.Error() + ": change spec.address"}
	case errors.As(err, &rotation):
		return outcome{reason: ReasonKeyRotationFailed, message: rotation.Error()}
	case errors.As(err, &notYet):
		return outcome{reason: ReasonKeyNotAuthorizedYet, message: notYet.Error()}
	case errors.As(err, &auth):
		return authOutcome(auth)
	case errors.As(err, &mismatch):
		return outcome{reason: ReasonHostKeyMismatch, message: hostKeyMismatchMessage(mismatch)}
	case errors.As(err, &unreachable):
		return outcome{reason: ReasonUnreachable, message: fmt.Sprintf("cannot reach the host's SSH server: %v", unreachable.Err)}
	default:
		return outcome{reason: ReasonConnectionFailed, message: err.Error()}
	}
}

// authOutcome says what an authentication failure was and what fixes it:
// an unusable private key is the Secret's fault (InvalidPrivateKey), the
// rest are the host's answer (AuthenticationFailed). auth.Reason never
// holds key material.
func authOutcome(auth *remote.AuthError) outcome {
	switch auth.Cause {
	case remote.AuthKeyUnusable:
		return outcome{reason: ReasonInvalidKey, message: fmt.Sprintf("the SSH private key in the credentials Secret cannot be used (%s): put an unencrypted RSA, ECDSA or Ed25519 private key in PEM or OpenSSH format there", auth.Reason)}
	case remote.AuthPublicKeyNotOffered:
		return outcome{reason: ReasonAuthenticationFailed, message: fmt.Sprintf("the host's SSH server does not let user %s log in with a key (%s): set PubkeyAuthentication yes in the host's sshd_config", auth.User, auth.Reason)}
	case remote.AuthMoreMethodsRequired:
		return outcome{reason: ReasonAuthenticationFailed, message: fmt.Sprintf("the host accepted the SSH key for user %s but asks for more (%s): the operator logs in with the key alone; remove AuthenticationMethods from the host's sshd_config", auth.User, auth.Reason)}
	default:
		return outcome{reason: ReasonAuthenticationFailed, message: fmt.Sprintf("the host refused the SSH key for user %s: fix the key in the credentials Secret or spec.username", auth.User)}
	}
}

// hostKeyMismatchMessage says what a host key mismatch is and the one fix
// that works: setting spec.hostKey to the key the host presents (public,
// so it is shown to compare and copy). Clearing spec.hostKey would not
// do: the key pinned on first use (status.hostKey) is checked then, and
// nothing trusts a new key by itself.
func hostKeyMismatchMessage(mismatch *remote.HostKeyMismatchError) string {
	msg := fmt.Sprintf("the host presented SSH host key %s, not the pinned %s: if the host was legitimately reinstalled, check the new key and set spec.hostKey to it", mismatch.Actual, mismatch.Expected)
	if mismatch.ActualKey != "" {
		msg += " (" + mismatch.ActualKey + ")"
	}
	return msg + "; an empty spec.hostKey keeps the key pinned in status.hostKey"
}

// sshErrorType is the label of metrics.SSHErrors for a connect error.
func sshErrorType(err error) string {
	var auth *remote.AuthError
	var mismatch *remote.HostKeyMismatchError
	var unreachable *remote.UnreachableError
	var full *remote.DiskFullError
	var forbidden *remote.ForbiddenAddressError
	switch {
	case errors.As(err, &auth):
		return "auth"
	case errors.As(err, &forbidden):
		return "forbidden"
	case errors.As(err, &mismatch):
		return "hostkey"
	case errors.As(err, &unreachable):
		return "unreachable"
	case errors.As(err, &full):
		return "diskfull"
	default:
		return "other"
	}
}

// setCondition records an outcome as a condition of the instance.
func setCondition(wi *wmcov1.WindowsInstance, condType string, o outcome) {
	status := metav1.ConditionFalse
	if o.ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&wi.Status.Conditions, metav1.Condition{
		Type: condType, Status: status, Reason: o.reason, Message: core.Truncate(o.message, core.MaxConditionMessageBytes),
		ObservedGeneration: wi.Generation,
	})
}

// Each phase's condition, set from what it observed.
func setReachableCondition(wi *wmcov1.WindowsInstance, o outcome) {
	setCondition(wi, wmcov1.ConditionReachable, o)
}
func setPreflightCondition(wi *wmcov1.WindowsInstance, o outcome) {
	setCondition(wi, wmcov1.ConditionPreflightPassed, o)
}
func setConfiguredCondition(wi *wmcov1.WindowsInstance, o outcome) {
	setCondition(wi, wmcov1.ConditionConfigured, o)
}
func setNodeReadyCondition(wi *wmcov1.WindowsInstance, o outcome) {
	setCondition(wi, wmcov1.ConditionNodeReady, o)
}

// summarize is the one writer of status.phase and status.message. It
// computes them, Ready, and the kstatus conditions Reconciling and Stalled
// from the other conditions:
//   - Ready is true when each of Reachable, PreflightPassed, Configured and
//     NodeReady is; otherwise the first of them that is not true, in the
//     order a host passes them, explains why;
//   - Stalled is true, with that reason, when the explanation is terminal
//     (it needs a change of the spec or the Secret): phase Failed;
//   - Reconciling is true while the operator works towards Ready (or
//     cleans a deleted instance), with the step as its reason.
//
// Stalled and Reconciling are removed when they do not hold, as kstatus
// tools (kubectl wait, Flux, Argo CD) expect of abnormal-true conditions.
// A host waiting for a configuration slot (waitingSlot) is Pending.
func summarize(wi *wmcov1.WindowsInstance, deleting, waitingSlot bool) {
	switch {
	case deleting:
		o := outcome{reason: ReasonDeleting, message: "the host is being drained and cleaned"}
		if c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionDraining); c != nil && c.Status == metav1.ConditionTrue {
			// Say what the drain waits for (pods left, budgets refusing).
			o = outcome{reason: c.Reason, message: c.Message}
		} else if c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionConfigured); c != nil && c.Reason == ReasonCleanupFailed {
			// Or what keeps the host from being cleaned.
			o = outcome{reason: c.Reason, message: c.Message}
		} else if c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionReachable); wi.Status.HostKey != "" &&
			c != nil && c.Status == metav1.ConditionFalse && !progressReasons[c.Reason] {
			// Or that the host, once reached, cannot be now: the
			// deletion waits for it, for good if it is gone.
			o = outcome{reason: c.Reason, message: unreachableDeletionMessage(c.Message, wi.Labels[wmcov1.LabelSource] == wmcov1.SourceMachine)}
		}
		setSummary(wi, wmcov1.PhaseDeprovisioning, o, kstatusReconciling)
		return
	case wi.Spec.Paused:
		setSummary(wi, wmcov1.PhasePaused, outcome{reason: ReasonPaused, message: "spec.paused is set: the operator leaves the host alone"}, kstatusIdle)
		return
	}
	for _, cond := range []string{wmcov1.ConditionPayloadCompatible, wmcov1.ConditionClusterConfigCompatible} {
		if c := meta.FindStatusCondition(wi.Status.Conditions, cond); c != nil && c.Status == metav1.ConditionFalse {
			// Nothing is done until a payload fits and the cluster's
			// configuration is complete; it is not the spec's fault, and
			// resolves itself when the control plane, the operator or the
			// cluster's configuration changes.
			setSummary(wi, wmcov1.PhasePending, outcome{reason: c.Reason, message: c.Message}, kstatusReconciling)
			return
		}
	}
	if u := wi.Status.Upgrade; u != nil {
		o := outcome{reason: ReasonUpgradeApplying, message: "upgrading " + u.Progress}
		if c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionUpgrading); c != nil && c.Status == metav1.ConditionTrue {
			o = outcome{reason: c.Reason, message: c.Message}
		}
		// A step that fails meanwhile (the host unreachable, an upload
		// refused) is what holds the upgrade up: say it.
		for _, cond := range []string{wmcov1.ConditionReachable, wmcov1.ConditionPreflightPassed, wmcov1.ConditionConfigured} {
			if c := meta.FindStatusCondition(wi.Status.Conditions, cond); c != nil && c.Status == metav1.ConditionFalse && !progressReasons[c.Reason] {
				o.message += ": " + c.Message
				break
			}
		}
		setSummary(wi, wmcov1.PhaseUpgrading, o, kstatusReconciling)
		return
	}
	steps := []struct {
		cond    string
		phase   wmcov1.InstancePhase
		perhaps func(reason string) wmcov1.InstancePhase
	}{
		{wmcov1.ConditionReachable, wmcov1.PhaseConnecting, nil},
		{wmcov1.ConditionPreflightPassed, wmcov1.PhasePreflight, nil},
		{wmcov1.ConditionConfigured, wmcov1.PhaseConfiguring, func(r string) wmcov1.InstancePhase {
			if r == ReasonPayloadTransfer || r == ReasonPayloadTransferFailed {
				return wmcov1.PhaseProvisioning
			}
			return wmcov1.PhaseConfiguring
		}},
		{wmcov1.ConditionNodeReady, wmcov1.PhaseWaitingForNode, nil},
	}
	for i, st := range steps {
		c := meta.FindStatusCondition(wi.Status.Conditions, st.cond)
		if c != nil && c.Status == metav1.ConditionTrue {
			continue
		}
		o := outcome{reason: ReasonNotObserved, message: st.cond + " has not been observed yet"}
		if c != nil {
			o = outcome{reason: c.Reason, message: c.Message}
		}
		phase := st.phase
		if st.perhaps != nil {
			phase = st.perhaps(o.reason)
		}
		switch {
		case o.terminal():
			setSummary(wi, wmcov1.PhaseFailed, o, kstatusStalled)
		case waitingSlot:
			if i == 0 && c == nil {
				phase = wmcov1.PhasePending
			}
			setSummary(wi, phase, outcome{reason: ReasonWaitingSlot, message: "waiting for a configuration slot (WindowsNodeConfig spec.maxParallelConfigurations)"}, kstatusReconciling)
		case i == 0 && c == nil:
			// Nothing observed yet: the host has not been tried.
			setSummary(wi, wmcov1.PhasePending, o, kstatusReconciling)
		default:
			setSummary(wi, phase, o, kstatusReconciling)
		}
		return
	}
	setSummary(wi, wmcov1.PhaseReady, outcome{ok: true, reason: ReasonReady, message: "the host is a Ready node"}, kstatusIdle)
}

// kstatus is what summarize says through Reconciling and Stalled.
type kstatus int

const (
	kstatusIdle        kstatus = iota // neither: Ready, or paused
	kstatusReconciling                // working towards Ready
	kstatusStalled                    // stuck until the spec or the Secret changes
)

// setSummary writes the phase, the message, Ready and the kstatus
// conditions.
func setSummary(wi *wmcov1.WindowsInstance, phase wmcov1.InstancePhase, o outcome, k kstatus) {
	wi.Status.Phase = phase
	wi.Status.Message = core.Truncate(o.message, maxStatusMessage)
	if o.ok {
		wi.Status.Message = ""
	}
	setCondition(wi, wmcov1.ConditionReady, o)
	switch k {
	case kstatusReconciling:
		setCondition(wi, wmcov1.ConditionReconciling, outcome{ok: true, reason: o.reason, message: o.message})
		meta.RemoveStatusCondition(&wi.Status.Conditions, wmcov1.ConditionStalled)
	case kstatusStalled:
		setCondition(wi, wmcov1.ConditionStalled, outcome{ok: true, reason: o.reason, message: o.message})
		meta.RemoveStatusCondition(&wi.Status.Conditions, wmcov1.ConditionReconciling)
	default:
		meta.RemoveStatusCondition(&wi.Status.Conditions, wmcov1.ConditionReconciling)
		meta.RemoveStatusCondition(&wi.Status.Conditions, wmcov1.ConditionStalled)
	}
}

// stalled reports whether summarize found the instance stuck.
func stalled(wi *wmcov1.WindowsInstance) bool {
	return meta.IsStatusConditionTrue(wi.Status.Conditions, wmcov1.ConditionStalled)
}

// unreachableDeletionMessage says why a deleted instance whose host cannot
// be reached stays, and how to let it go; a Machine's is let go by the
// operator in time.
func unreachableDeletionMessage(why string, machine bool) string {
	msg := "cannot clean the host, retried every minute: " + why +
		"; to give the host up uncleaned, annotate the instance " + wmcov1.AnnotationAbandonHost + "=<why> (its Node is deleted and its bootstrap credentials revoked)"
	if machine {
		msg += "; the operator does so once the host has not let it in for --machine-access-timeout, as its Machine's VM is removed anyway"
	}
	return msg
}

// progressReasons are condition reasons that say a step is under way, not
// that it failed.
var progressReasons = map[string]bool{
	ReasonConnecting: true, ReasonCheckingHost: true, ReasonPayloadTransfer: true, ReasonApplyingPlan: true, ReasonNotObserved: true,
	ReasonConfigNeeded: true, ReasonRebooting: true, ReasonRenamingHost: true,
}

// maxStatusMessage bounds status.message, shown in kubectl get wi -o wide.
const maxStatusMessage = 1024

// setClusterConfigCondition records whether the cluster's configuration
// lets a Windows host join: problem is what to configure, "" when
// nothing; mismatches are what differs between the host's network and
// the cluster's (cluster.NetworkMismatches), told when there is no
// problem.
func setClusterConfigCondition(wi *wmcov1.WindowsInstance, problem string, mismatches []string) {
	if problem != "" {
		setCondition(wi, wmcov1.ConditionClusterConfigCompatible, outcome{reason: ReasonClusterConfigIncomplete,
			message: problem + "; no host is touched until it is"})
		return
	}
	if len(mismatches) > 0 {
		setCondition(wi, wmcov1.ConditionClusterConfigCompatible, outcome{reason: ReasonClusterNetworkMismatch,
			message: networkMismatchMessage(mismatches) + "; no host is touched until it does"})
		return
	}
	setCondition(wi, wmcov1.ConditionClusterConfigCompatible, outcome{ok: true, reason: ReasonClusterConfigRead,
		message: "the cluster's configuration lets Windows hosts join"})
}
