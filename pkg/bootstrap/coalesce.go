package bootstrap

import (
	"context"
	"sync"
	"time"
)

// coalesced runs one operation at a time on behalf of many callers: a
// caller waits for a run that starts after it asked, and every caller
// arriving while a run is under way shares the next one. A run is given
// the keys its callers asked with and answers with a value per key.
//
// It serves two things that must not act on what was true before the
// caller asked: the binding syncs (a sync lists the ServiceAccounts the
// caller has just created or deleted) and the CSR approver's live reads of
// bootstrap ServiceAccounts (a revoked identity must not be approved).
// With one request per caller, a burst of N hosts cost N requests; with
// coalescing it costs one per run, each run lasting about a round trip.
type coalesced[K comparable, V any] struct {
	// timeout bounds one run, which goes on when the caller that started
	// it gives up (others may share it).
	timeout time.Duration

	mu      sync.Mutex
	running bool
	next    *coalescedRun[K, V] // not started yet; callers join it
}

// coalescedRun is one run: its callers' keys and its answer.
type coalescedRun[K comparable, V any] struct {
	ctx  context.Context
	keys []K // in the order asked; a key asked twice is there twice
	done chan struct{}
	vals map[K]V
	err  error
}

// do waits for a run of op that starts after the call and returns the
// value that run gave for key (the zero value when it gave none). The run
// is detached from ctx, bounded by the timeout; do returns early when ctx
// ends. Each run calls the op of the caller that made the run's
// goroutine: callers of one coalesced pass the same op.
func (c *coalesced[K, V]) do(ctx context.Context, key K, op func(context.Context, []K) (map[K]V, error)) (V, error) {
	c.mu.Lock()
	if c.next == nil {
		c.next = &coalescedRun[K, V]{ctx: context.WithoutCancel(ctx), done: make(chan struct{})}
		if !c.running {
			c.running = true
			go c.run(op)
		}
	}
	r := c.next
	r.keys = append(r.keys, key)
	c.mu.Unlock()
	select {
	case <-r.done:
		return r.vals[key], r.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// run runs what callers wait for until none does.
func (c *coalesced[K, V]) run(op func(context.Context, []K) (map[K]V, error)) {
	for {
		c.mu.Lock()
		r := c.next
		c.next = nil
		if r == nil {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(r.ctx, c.timeout)
		r.vals, r.err = op(ctx, r.keys)
		cancel()
		close(r.done)
	}
}

// waiting is how many callers wait for the next run (for tests).
func (c *coalesced[K, V]) waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.next == nil {
		return 0
	}
	return len(c.next.keys)
}
