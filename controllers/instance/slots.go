package instance

import (
	"slices"
	"sync"
)

// slots bounds how many hosts the controller works on at once, by
// WindowsNodeConfig's maxParallelConfigurations. Unlike the controller's
// worker count, the bound follows the WindowsNodeConfig without a restart.
// A slot is held for one reconcile, not for a host's whole join: a host
// waiting for its kubelet (TLS bootstrap, the Node's registration and
// readiness) holds none. A reconcile that finds no free slot does not
// wait: it records the instance as waiting and returns; a freed slot
// wakes the next waiter (the wake function). An instance paused or deleted
// leaves the waiters (drop), and a wake-up it was given goes on to the
// next.
//
// Waiters are woken in the order they came, except that hosts finishing
// their join (configured before: what is left is short, a plan applied
// again once the Node's pod subnet is known, labels) go before hosts that
// have not started: each slot's work then ends with a Ready host, rather
// than every host's last step queueing behind every other host's payload
// upload (which left N=50 hosts all NotReady until the last upload).
type slots struct {
	mu    sync.Mutex
	limit int
	held  map[string]bool
	// waiting are the instances waiting for a slot; finishing ones first.
	waiting []waiter
	// woken are the waiters woken for a freed slot that have not come to
	// take it yet (one that returned early for another reason stays
	// until its next try: drop then passes on one wake-up too many, at
	// worst).
	woken map[string]bool
	wake  func(name string)
}

// waiter is an instance waiting for a slot.
type waiter struct {
	name string
	// finishing: the host was configured before.
	finishing bool
}

func newSlots(limit int, wake func(name string)) *slots {
	return &slots{limit: max(limit, 1), held: map[string]bool{}, woken: map[string]bool{}, wake: wake}
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
// and returns false. finishing says the host was configured before (its
// wait goes before the others').
func (s *slots) tryAcquire(name string, finishing bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.woken, name)
	if s.held[name] {
		return true
	}
	i := slices.IndexFunc(s.waiting, func(w waiter) bool { return w.name == name })
	if len(s.held) >= s.limit {
		if i < 0 {
			w := waiter{name: name, finishing: finishing}
			// Behind the waiters of its kind, before the others.
			at := len(s.waiting)
			if finishing {
				at = slices.IndexFunc(s.waiting, func(w waiter) bool { return !w.finishing })
				if at < 0 {
					at = len(s.waiting)
				}
			}
			s.waiting = slices.Insert(s.waiting, at, w)
		}
		return false
	}
	if i >= 0 {
		s.waiting = slices.Delete(s.waiting, i, i+1)
	}
	s.held[name] = true
	return true
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

// drop forgets the instance name, which takes no slot (it was paused or
// deleted): it leaves the waiters, and a wake-up it was given for a freed
// slot goes to the next waiter instead of being lost with it.
func (s *slots) drop(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiting = slices.DeleteFunc(s.waiting, func(w waiter) bool { return w.name == name })
	if s.woken[name] {
		delete(s.woken, name)
		if len(s.held) < s.limit {
			s.wakeNextLocked()
		}
	}
}

func (s *slots) wakeLocked() {
	for free := s.limit - len(s.held); free > 0; free-- {
		if !s.wakeNextLocked() {
			return
		}
	}
}

// wakeNextLocked wakes the first waiter, if any.
func (s *slots) wakeNextLocked() bool {
	if len(s.waiting) == 0 {
		return false
	}
	w := s.waiting[0]
	s.waiting = s.waiting[1:]
	s.woken[w.name] = true
	if s.wake != nil {
		s.wake(w.name)
	}
	return true
}
