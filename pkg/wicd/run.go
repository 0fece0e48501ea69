package wicd

import (
	"context"
	"fmt"
	"io"
	"time"
)

// DefaultRunInterval is how often `wicd run` re-applies the last plan.
const DefaultRunInterval = 10 * time.Second

// RunLoop re-applies the last applied plan every interval until ctx ends:
// stopped services are started again, changed files and service settings
// are put back. Each correction is written to log as a line of text.
func RunLoop(ctx context.Context, b *Backend, interval time.Duration, log io.Writer) error {
	if interval <= 0 {
		interval = DefaultRunInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		reconcileOnce(ctx, b, log)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// reconcileOnce re-applies the applied plan. The plan is read under the
// host lock: read before it, a plan that `wicd apply` saves meanwhile would
// be undone by re-applying the old one.
func reconcileOnce(ctx context.Context, b *Backend, log io.Writer) {
	unlock, err := b.Locker.Lock(ctx)
	if err != nil {
		return // ctx ended
	}
	defer unlock()
	plan, err := appliedPlan(b.Files)
	if err != nil {
		fmt.Fprintf(log, "wicd run: read applied plan: %v\n", err)
		return
	}
	if plan == nil {
		return
	}
	res, err := apply(ctx, b, plan)
	if err != nil {
		if ctx.Err() == nil {
			fmt.Fprintf(log, "wicd run: re-apply plan: %v\n", err)
		}
		return
	}
	for _, c := range res.Changes {
		fmt.Fprintf(log, "wicd run: corrected drift: %s %s %s\n", c.Kind, c.Name, c.Action)
	}
	now := b.System.Now()
	rotated, err := rotateLogs(b.Files, plan.LogRetention, now)
	for _, r := range rotated {
		fmt.Fprintf(log, "wicd run: rotated log %s to %s (%d bytes)\n", r.From, r.To, r.Bytes)
	}
	if err != nil {
		fmt.Fprintf(log, "wicd run: rotate logs: %v\n", err)
	}
	pruned, err := pruneLogs(b.Files, plan.LogRetention, now)
	for _, p := range pruned {
		fmt.Fprintf(log, "wicd run: removed log %s: %s\n", p.Path, p.Reason)
	}
	if err != nil {
		fmt.Fprintf(log, "wicd run: prune logs: %v\n", err)
	}
}
