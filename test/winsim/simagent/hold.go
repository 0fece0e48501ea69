package simagent

import (
	"context"
	"sync/atomic"
)

// Hold is a start gate (Options.StartGates) for tests that cut a start
// short: while armed, each start it gates stays pending until the start's
// context ends (the agent's command was cancelled, its caller's
// connection closed), and Held receives a value for it. Disarmed, starts
// pass at once.
type Hold struct {
	armed atomic.Bool
	held  chan struct{}
}

// NewHold returns a disarmed Hold.
func NewHold() *Hold { return &Hold{held: make(chan struct{}, 1)} }

// Arm arms or disarms the gate.
func (h *Hold) Arm(on bool) { h.armed.Store(on) }

// Held receives once a start is held (at most one value waits).
func (h *Hold) Held() <-chan struct{} { return h.held }

// Gate is the StartGates function.
func (h *Hold) Gate(ctx context.Context) error {
	if !h.armed.Load() {
		return nil
	}
	select {
	case h.held <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}
