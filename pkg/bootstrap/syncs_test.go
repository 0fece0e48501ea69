package bootstrap

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// Callers that arrive while a sync runs share the next one, which starts
// after all of them called; a caller whose context ends stops waiting
// without stopping the sync the others wait for.
func TestBindingSyncsShareTheNextSync(t *testing.T) {
	g := NewWithT(t)
	var (
		s       bindingSyncs
		started atomic.Int32
		release = make(chan struct{})
		running = make(chan int32, 10)
	)
	syncNow := func(ctx context.Context) error {
		n := started.Add(1)
		running <- n
		<-release
		if n == 2 {
			return errors.New("second sync failed")
		}
		return ctx.Err()
	}

	first := make(chan error, 1)
	go func() { first <- s.do(context.Background(), syncNow) }()
	g.Eventually(running).Should(Receive(Equal(int32(1))))

	// Ten callers arrive while the first sync runs; one gives up.
	var wg sync.WaitGroup
	errs := make([]error, 10)
	ctx, cancel := context.WithCancel(context.Background())
	for i := range errs {
		c := context.Background()
		if i == 0 {
			c = ctx
		}
		wg.Go(func() { errs[i] = s.do(c, syncNow) })
	}
	g.Eventually(func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.next == nil {
			return 0
		}
		return s.next.callers
	}).Should(Equal(10))
	cancel()
	g.Consistently(running, 200*time.Millisecond).ShouldNot(Receive(), "the next sync waits for the running one")

	close(release)
	g.Eventually(first).Should(Receive(BeNil()))
	g.Eventually(running).Should(Receive(Equal(int32(2))))
	wg.Wait()
	g.Expect(errs[0]).To(MatchError(context.Canceled))
	for _, err := range errs[1:] {
		g.Expect(err).To(MatchError("second sync failed"), "they share the second sync's result")
	}
	g.Expect(started.Load()).To(BeEquivalentTo(2), "ten callers, one more sync")

	// Idle again: the next caller starts a sync of its own.
	g.Expect(s.do(context.Background(), syncNow)).To(Succeed())
	g.Expect(started.Load()).To(BeEquivalentTo(3))
}
