package simagent

import (
	"context"
	"sync/atomic"
)

// Hold is a start or stop gate (Options.StartGates, Options.StopGates)
// for tests that cut a start or stop short: while armed, each start or
// stop it gates stays pending until its context ends (the agent's command
// was cancelled, its caller's connection closed), and Held receives a
// value for it. Disarmed, starts and stops pass at once.
type Hold struct {
	armed atomic.Bool
	// passes is how many starts or stops pass before the armed gate
	// holds.
	passes atomic.Int64
	held   chan struct{}
}

// NewHold returns a disarmed Hold.
func NewHold() *Hold { return &Hold{held: make(chan struct{}, 1)} }

// Arm arms or disarms the gate.
func (h *Hold) Arm(on bool) {
	h.passes.Store(0)
	h.armed.Store(on)
}

// ArmAfter arms the gate to let the next n starts or stops pass and hold the ones
// after them.
func (h *Hold) ArmAfter(n int) {
	h.passes.Store(int64(n))
	h.armed.Store(true)
}

// Held receives once a start or stop is held (at most one value waits).
func (h *Hold) Held() <-chan struct{} { return h.held }

// Gate is the StartGates or StopGates function.
func (h *Hold) Gate(ctx context.Context) error {
	if !h.armed.Load() || h.passes.Add(-1) >= 0 {
		return nil
	}
	select {
	case h.held <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}
