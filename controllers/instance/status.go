package instance

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// Condition reasons. Terminal ones need a change of the spec or the Secret.
const (
	ReasonConnected            = "Connected"
	ReasonSecretNotFound       = "SecretNotFound"
	ReasonInvalidKey           = "InvalidPrivateKey"
	ReasonAuthenticationFailed = "AuthenticationFailed"
	ReasonHostKeyMismatch      = "HostKeyMismatch"
	ReasonUnreachable          = "Unreachable"
	ReasonConnectionFailed     = "ConnectionFailed"

	ReasonPreflightPassed = "PreflightPassed"
	ReasonRebooting       = "Rebooting"

	ReasonPayloadTransfer = "PayloadTransfer"
	ReasonApplyFailed     = "ApplyFailed"
	ReasonPlanApplied     = "PlanApplied"
	ReasonRenderFailed    = "RenderFailed"
	ReasonAgentFailed     = "AgentFailed"

	ReasonNodeNotFound = "NodeNotRegistered"
	ReasonNodeNotReady = "NodeNotReady"
	ReasonNodeReady    = "NodeReady"

	ReasonPaused       = "Paused"
	ReasonReady        = "Ready"
	ReasonDeleting     = "Deprovisioning"
	ReasonNotObserved  = "NotObservedYet"
	ReasonWaitingSlot  = "WaitingForSlot"
	ReasonConfigNeeded = "ConfigurationNeeded"
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
)

// terminalReasons stop retries until the spec or the Secret changes.
var terminalReasons = map[string]bool{
	ReasonSecretNotFound: true, ReasonInvalidKey: true, ReasonAuthenticationFailed: true,
	ReasonHostKeyMismatch: true, wicdapi.ReasonUnsupported: true, wicdapi.ReasonBadHostname: true,
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
	switch {
	case errors.As(err, &auth):
		return outcome{reason: ReasonAuthenticationFailed, message: fmt.Sprintf("the host refused the SSH key for user %s: fix the key in the credentials Secret or spec.username", auth.User)}
	case errors.As(err, &mismatch):
		return outcome{reason: ReasonHostKeyMismatch, message: fmt.Sprintf("the host presented SSH host key %s, not the pinned %s: if the host was legitimately reinstalled, update or clear spec.hostKey (and status.hostKey is re-learned)", mismatch.Actual, mismatch.Expected)}
	case errors.As(err, &unreachable):
		return outcome{reason: ReasonUnreachable, message: fmt.Sprintf("cannot reach the host's SSH server: %v", unreachable.Err)}
	default:
		return outcome{reason: ReasonConnectionFailed, message: err.Error()}
	}
}

// sshErrorType is the label of metrics.SSHErrors for a connect error.
func sshErrorType(err error) string {
	var auth *remote.AuthError
	var mismatch *remote.HostKeyMismatchError
	var unreachable *remote.UnreachableError
	var full *remote.DiskFullError
	switch {
	case errors.As(err, &auth):
		return "auth"
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
		Type: condType, Status: status, Reason: o.reason, Message: core.Truncate(o.message, maxConditionMessage),
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

// summarize computes Ready, the phase and the message from the other
// conditions: Ready is true when each of them is; otherwise the first one
// that is not true, in the order a host passes them, explains why.
func summarize(wi *wmcov1.WindowsInstance, deleting bool) {
	if deleting {
		wi.Status.Phase = wmcov1.PhaseDeprovisioning
		setCondition(wi, wmcov1.ConditionReady, outcome{reason: ReasonDeleting, message: "the host is being drained and cleaned"})
		wi.Status.Message = "the host is being drained and cleaned"
		return
	}
	if wi.Spec.Paused {
		wi.Status.Phase = wmcov1.PhasePaused
		setCondition(wi, wmcov1.ConditionReady, outcome{reason: ReasonPaused, message: "spec.paused is set: the operator leaves the host alone"})
		wi.Status.Message = "paused"
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
			if r == ReasonPayloadTransfer {
				return wmcov1.PhaseProvisioning
			}
			return wmcov1.PhaseConfiguring
		}},
		{wmcov1.ConditionNodeReady, wmcov1.PhaseWaitingForNode, nil},
	}
	for _, s := range steps {
		c := meta.FindStatusCondition(wi.Status.Conditions, s.cond)
		if c != nil && c.Status == metav1.ConditionTrue {
			continue
		}
		o := outcome{reason: ReasonNotObserved, message: s.cond + " has not been observed yet"}
		if c != nil {
			o = outcome{reason: c.Reason, message: c.Message}
		}
		phase := s.phase
		if s.perhaps != nil {
			phase = s.perhaps(o.reason)
		}
		if o.terminal() {
			phase = wmcov1.PhaseFailed
		}
		wi.Status.Phase = phase
		wi.Status.Message = o.message
		setCondition(wi, wmcov1.ConditionReady, o)
		return
	}
	wi.Status.Phase = wmcov1.PhaseReady
	wi.Status.Message = ""
	setCondition(wi, wmcov1.ConditionReady, outcome{ok: true, reason: ReasonReady, message: "the host is a Ready node"})
}

// maxConditionMessage is the longest message a condition may hold.
const maxConditionMessage = 32768
