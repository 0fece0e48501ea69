package instance

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
)

// ReasonRebootNotObserved is the Event when a host the operator asked to
// reboot still runs the same boot rebootWait later.
const ReasonRebootNotObserved = "RebootNotObserved"

// rebootWait is how long a host may keep running the boot it was asked to
// end: `shutdown /r /t 5` waits 5 s, and Windows may then spend minutes
// on updates before it goes down.
const rebootWait = 10 * time.Minute

// rebootPoll is how soon a host that still runs the boot it was asked to
// end is looked at again: nothing on it can be watched.
const rebootPoll = 5 * time.Second

// requestedReboot records in the status that the host, running the boot
// the facts tell, was asked to reboot now.
func (r *Reconciler) requestedReboot(s *scope) {
	boot := ""
	if s.facts != nil {
		boot = s.facts.BootTime
	}
	s.wi.Status.Reboot = &wmcov1.RebootStatus{RequestedAt: metav1.NewTime(r.Now()), BootTime: boot}
}

// reconcileReboot holds the host back while it still runs the boot it was
// asked to end (status.reboot): `shutdown /r /t N` returns at once and
// Windows answers for N more seconds with the old boot's state (the old
// computer name, a feature still pending), which the phases after this one
// would take for a reboot that did not help. A later boot ends the wait;
// so does an agent that does not tell its boot (the phases then see what
// they see, as before boots were told), and rebootWait: someone cancelled
// the reboot (shutdown /a), and the phases that asked for it look again.
func (r *Reconciler) reconcileReboot(_ context.Context, s *scope) (ctrl.Result, error) {
	rb := s.wi.Status.Reboot
	if rb == nil {
		return ctrl.Result{}, nil
	}
	switch rebootProgress(rb, s.facts.BootTime, r.Now()) {
	case rebootPending:
		s.log.V(1).Info("Waiting for the host to reboot", "bootTime", rb.BootTime, "requested", rb.RequestedAt)
		// The connection ends with the boot.
		s.dropSession = true
		return ctrl.Result{RequeueAfter: rebootPoll}, nil
	case rebootNotObserved:
		s.log.Info("The host did not reboot", "bootTime", rb.BootTime, "requested", rb.RequestedAt)
		r.event(s, true, ReasonRebootNotObserved, "The host still runs the boot of %s, %s after it was asked to reboot", rb.BootTime, rebootWait)
	default:
		s.log.V(1).Info("Host rebooted", "bootTime", s.facts.BootTime, "requested", rb.RequestedAt)
	}
	s.wi.Status.Reboot = nil
	return ctrl.Result{}, nil
}

// Where a reboot the operator asked for stands.
const (
	// rebootDone: the host runs a later boot, or its agent does not tell
	// boots apart.
	rebootDone = iota
	// rebootPending: the host still runs the boot it was asked to end.
	rebootPending
	// rebootNotObserved: it still does rebootWait later.
	rebootNotObserved
)

// rebootProgress tells where the reboot rb stands, from the boot time the
// host reports now.
func rebootProgress(rb *wmcov1.RebootStatus, bootTime string, now time.Time) int {
	switch {
	case rb.BootTime == "" || bootTime != rb.BootTime:
		return rebootDone
	case now.Sub(rb.RequestedAt.Time) < rebootWait:
		return rebootPending
	}
	return rebootNotObserved
}
