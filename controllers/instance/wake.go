package instance

import (
	"context"
	"slices"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
)

// wakeups are the controller's one source of reconciles that no watched
// object brings: a freed configuration slot wakes the instances waiting
// for it, a new API server version or a freed upgrade slot wakes every
// instance, and changed cluster facts wake the instances that last saw
// other ones. The wake-ups are recorded here and a doorbell (a channel of
// capacity 1, the controller's source) is rung; the map function that
// answers it takes everything recorded so far, so wake-ups that come
// while one is pending are merged into it and none is ever lost.
type wakeups struct {
	mu sync.Mutex
	// all: every instance.
	all bool
	// behindCluster: the instances whose last reconcile started with
	// other cluster facts than the current ones.
	behindCluster bool
	// names are single instances, in the order they were woken.
	names []string
	bell  chan event.GenericEvent
}

func newWakeups() *wakeups {
	return &wakeups{bell: make(chan event.GenericEvent, 1)}
}

// instance wakes the instance name.
func (w *wakeups) instance(name string) {
	w.mu.Lock()
	if !slices.Contains(w.names, name) {
		w.names = append(w.names, name)
	}
	w.mu.Unlock()
	w.ring()
}

// everyInstance wakes every instance.
func (w *wakeups) everyInstance() {
	w.mu.Lock()
	w.all = true
	w.mu.Unlock()
	w.ring()
}

// clusterChanged wakes the instances whose last reconcile saw other
// cluster facts than the current ones.
func (w *wakeups) clusterChanged() {
	w.mu.Lock()
	w.behindCluster = true
	w.mu.Unlock()
	w.ring()
}

// ring signals that wake-ups are recorded; a ring while one is pending
// is merged into it (take finds both).
func (w *wakeups) ring() {
	select {
	case w.bell <- event.GenericEvent{Object: &wmcov1.WindowsNodeConfig{}}:
	default:
	}
}

// take returns and forgets what was recorded.
func (w *wakeups) take() (all, behindCluster bool, names []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	all, behindCluster, names = w.all, w.behindCluster, w.names
	w.all, w.behindCluster, w.names = false, false, nil
	return all, behindCluster, names
}

// wokenInstances answers the doorbell: the instances woken since the last
// ring was answered.
func (r *Reconciler) wokenInstances(ctx context.Context, o client.Object) []reconcile.Request {
	all, behind, names := r.wake.take()
	if all {
		return r.allInstances(ctx, o)
	}
	var out []reconcile.Request
	if behind {
		out = r.instancesBehindCluster(ctx, o)
	}
	for _, n := range names {
		req := reconcile.Request{NamespacedName: client.ObjectKey{Name: n}}
		if !slices.Contains(out, req) {
			out = append(out, req)
		}
	}
	return out
}
