package winsim

import (
	"slices"
	"strings"
	"sync"
)

// Request is one client request the host serves: an exec'd command line or
// an SFTP session.
type Request struct {
	// Kind is "exec" or "sftp".
	Kind string
	// User is the account the client logged in as.
	User string
	// Args is the command line split as the host runs it (exec only).
	Args []string
}

// Observer hears of a host's activity as it happens, so that a test can
// inject a fault at a precise moment (reboot while the agent applies a
// plan, fill the disk once the payload transfer has begun) or count what
// runs at once. Its functions run on the host's serving goroutines and
// must return promptly: one that takes the host down (Reboot, Close) must
// do so from a goroutine of its own, since Reboot waits for the running
// programs, the caller among them.
type Observer struct {
	// Request, when set, is called as an exec request's program or an
	// SFTP session starts; the function it returns (nil for none) is
	// called when the program has returned (before its exit status is
	// sent) or the session has ended.
	Request func(Request) (ended func())
	// FileCreated, when set, is called when an SFTP client has created a
	// file (the path as the client named it, e.g. `C:/k/x.tmp`), before
	// any of its content is written.
	FileCreated func(path string)
	// Writing, when set, is called when an SFTP client opens a file for
	// writing; the function it returns (nil for none) is called when the
	// client closes the file or the session ends.
	Writing func(path string) (closed func())
}

// observers is the host's list of observers.
type observers struct {
	mu   sync.Mutex
	list []*Observer
}

// Observe adds o to the host's observers until the returned function is
// called.
func (h *Host) Observe(o Observer) (remove func()) {
	p := &o
	h.obs.mu.Lock()
	h.obs.list = append(h.obs.list, p)
	h.obs.mu.Unlock()
	return func() {
		h.obs.mu.Lock()
		defer h.obs.mu.Unlock()
		h.obs.list = slices.DeleteFunc(h.obs.list, func(x *Observer) bool { return x == p })
	}
}

func (o *observers) snapshot() []*Observer {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.list)
}

// request tells the observers a request starts and returns what to call
// when it ends.
func (o *observers) request(r Request) (ended func()) {
	return o.begin(func(ob *Observer) func() {
		if ob.Request == nil {
			return nil
		}
		return ob.Request(r)
	})
}

// writing tells the observers an SFTP client opened a file for writing
// and returns what to call when it closes it.
func (o *observers) writing(path string) (closed func()) {
	return o.begin(func(ob *Observer) func() {
		if ob.Writing == nil {
			return nil
		}
		return ob.Writing(path)
	})
}

// begin calls start for each observer and returns a function that calls
// what they returned.
func (o *observers) begin(start func(*Observer) func()) (end func()) {
	var ends []func()
	for _, ob := range o.snapshot() {
		if e := start(ob); e != nil {
			ends = append(ends, e)
		}
	}
	return func() {
		for _, e := range ends {
			e()
		}
	}
}

// fileCreated tells the observers an SFTP client created a file.
func (o *observers) fileCreated(path string) {
	for _, ob := range o.snapshot() {
		if ob.FileCreated != nil {
			ob.FileCreated(path)
		}
	}
}

// BusyCounter counts, from the hosts' side, how many of the hosts it
// watches run an exec'd program at once (an agent command): what
// WindowsNodeConfig's maxParallelConfigurations bounds. A connection that
// runs nothing does not count. With Uploads set (before the first Watch),
// a host receiving a file over SFTP counts as busy too. Safe for
// concurrent use.
type BusyCounter struct {
	// Uploads counts a host with a file open for writing as busy.
	Uploads bool

	mu         sync.Mutex
	busy       map[*Host]int
	now, peak  int
	unobserves []func()
}

// Watch starts counting h's programs (and uploads, with Uploads);
// watching a host twice counts it once.
func (b *BusyCounter) Watch(h *Host) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.busy == nil {
		b.busy = map[*Host]int{}
	}
	if _, ok := b.busy[h]; ok {
		return
	}
	b.busy[h] = 0
	o := Observer{Request: func(r Request) func() {
		if r.Kind != "exec" {
			return nil
		}
		return b.start(h)
	}}
	if b.Uploads {
		o.Writing = func(string) func() { return b.start(h) }
	}
	b.unobserves = append(b.unobserves, h.Observe(o))
}

// start counts one more activity on h and returns what ends it.
func (b *BusyCounter) start(h *Host) (end func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.busy[h]++
	if b.busy[h] == 1 {
		b.now++
		b.peak = max(b.peak, b.now)
	}
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.busy[h]--
		if b.busy[h] == 0 {
			b.now--
		}
	}
}

// Peak is the most hosts seen running a program at once since the start
// or the last ResetPeak.
func (b *BusyCounter) Peak() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
}

// ResetPeak starts a new peak from the hosts busy now.
func (b *BusyCounter) ResetPeak() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.peak = b.now
}

// Stop ends the counting.
func (b *BusyCounter) Stop() {
	b.mu.Lock()
	un := b.unobserves
	b.unobserves = nil
	b.mu.Unlock()
	for _, f := range un {
		f()
	}
}

// RequestLog records the requests a host serves, each as its kind and
// command line ("exec C:\k\wicd.exe facts", "sftp"), for tests that check
// what ran. Safe for concurrent use.
type RequestLog struct {
	mu       sync.Mutex
	requests []string
}

// Record starts recording h's requests until the returned function is
// called.
func (l *RequestLog) Record(h *Host) (stop func()) {
	return h.Observe(Observer{Request: func(r Request) func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.requests = append(l.requests, strings.TrimSpace(r.Kind+" "+strings.Join(r.Args, " ")))
		return nil
	}})
}

// Requests returns the requests recorded so far, in order.
func (l *RequestLog) Requests() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.requests)
}
