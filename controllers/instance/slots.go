package instance

import (
	"slices"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
)

// slots bounds how many hosts the controller works on at once, by
// WindowsNodeConfig's maxParallelConfigurations. Unlike the controller's
// worker count, the bound follows the WindowsNodeConfig without a restart.
// A reconcile that finds no free slot does not wait: it records the
// instance as waiting and returns; a freed slot wakes the longest-waiting
// instance through the wake channel (a source of the controller).
//
// Hosts configured before wait ahead of hosts that never were: a host
// whose plan is applied comes back for its last steps (the CNI
// configuration once its Node has a pod subnet, an upgrade), and a join
// in progress finishes before the next one starts. First come, first
// served alone let 40 new hosts pass every configured one in a 50-host
// join, and no Node became Ready until the last host was configured.
type slots struct {
	mu      sync.Mutex
	limit   int
	held    map[string]bool
	waiting []string
	// ahead holds the waiting instances that were configured before.
	ahead map[string]bool
	wake  chan event.GenericEvent
}

func newSlots(limit int) *slots {
	return &slots{limit: max(limit, 1), held: map[string]bool{}, ahead: map[string]bool{}, wake: make(chan event.GenericEvent, 1024)}
}

// setLimit changes the bound; a larger one wakes waiters at once.
func (s *slots) setLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 1 {
		n = 1
	}
	if n == s.limit {
		return
	}
	s.limit = n
	s.wakeLocked()
}

// tryAcquire takes a slot for the instance name, or records it as waiting
// and returns false. configured tells that the host was configured
// before: it then waits ahead of every host that was not.
func (s *slots) tryAcquire(name string, configured bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[name] {
		return true
	}
	if len(s.held) >= s.limit {
		s.enqueueLocked(name, configured)
		return false
	}
	s.waiting = slices.DeleteFunc(s.waiting, func(w string) bool { return w == name })
	delete(s.ahead, name)
	s.held[name] = true
	return true
}

// enqueueLocked records name as waiting: behind the hosts configured
// before when it was too, else at the end. A waiter keeps its place.
func (s *slots) enqueueLocked(name string, configured bool) {
	if slices.Contains(s.waiting, name) && (s.ahead[name] || !configured) {
		return
	}
	s.waiting = slices.DeleteFunc(s.waiting, func(w string) bool { return w == name })
	if !configured {
		s.waiting = append(s.waiting, name)
		return
	}
	i := slices.IndexFunc(s.waiting, func(w string) bool { return !s.ahead[w] })
	if i < 0 {
		i = len(s.waiting)
	}
	s.waiting = slices.Insert(s.waiting, i, name)
	s.ahead[name] = true
}

// usage is how many slots are held, the limit, and whether name holds one.
func (s *slots) usage(name string) (held, limit int, holds bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held), s.limit, s.held[name]
}

// release frees the instance's slot and wakes as many waiters as there
// are free slots.
func (s *slots) release(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, name)
	s.wakeLocked()
}

func (s *slots) wakeLocked() {
	for free := s.limit - len(s.held); free > 0 && len(s.waiting) > 0; free-- {
		name := s.waiting[0]
		s.waiting = s.waiting[1:]
		delete(s.ahead, name)
		select {
		case s.wake <- event.GenericEvent{Object: &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: name}}}:
		default:
			// The channel is full of wake-ups already; the waiter's
			// RequeueAfter brings it back.
		}
	}
}
