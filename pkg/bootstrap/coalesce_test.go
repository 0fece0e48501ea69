package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// Callers that arrive while a run is under way share the next one, which
// starts after all of them called and is given all their keys; each gets
// the value for its own key. A caller whose context ends stops waiting
// without stopping the run the others wait for.
func TestCoalescedSharesTheNextRun(t *testing.T) {
	g := NewWithT(t)
	var (
		c       = coalesced[string, int]{timeout: time.Minute}
		started atomic.Int32
		release = make(chan struct{})
		runs    = make(chan []string, 10)
	)
	op := func(ctx context.Context, keys []string) (map[string]int, error) {
		n := started.Add(1)
		runs <- keys
		<-release
		if n == 3 {
			return nil, errors.New("third run failed")
		}
		out := map[string]int{}
		for _, k := range keys {
			if k != "absent" {
				out[k] = len(k) * int(n)
			}
		}
		return out, ctx.Err()
	}

	first := make(chan int, 1)
	go func() {
		v, err := c.do(context.Background(), "a", op)
		g.Expect(err).NotTo(HaveOccurred())
		first <- v
	}()
	g.Eventually(runs).Should(Receive(Equal([]string{"a"})), "a lone caller's run has its key alone")

	// Ten callers arrive while the first run is under way; one gives up.
	var wg sync.WaitGroup
	vals, errs := make([]int, 10), make([]error, 10)
	ctx, cancel := context.WithCancel(context.Background())
	for i := range errs {
		cctx := context.Background()
		if i == 0 {
			cctx = ctx
		}
		key := fmt.Sprintf("key-%0*d", i+1, 0) // keys of lengths 5 to 14
		if i == 9 {
			key = "absent"
		}
		wg.Go(func() { vals[i], errs[i] = c.do(cctx, key, op) })
	}
	g.Eventually(c.waiting).Should(Equal(10))
	cancel()
	g.Consistently(runs, 200*time.Millisecond).ShouldNot(Receive(), "the next run waits for the one under way")

	close(release)
	g.Eventually(first).Should(Receive(Equal(1)))
	var second []string
	g.Eventually(runs).Should(Receive(&second))
	g.Expect(second).To(HaveLen(10), "the ten keys, the one given up on too")
	wg.Wait()
	g.Expect(errs[0]).To(MatchError(context.Canceled))
	for i := 1; i < 9; i++ {
		g.Expect(errs[i]).NotTo(HaveOccurred())
		g.Expect(vals[i]).To(Equal(2*(i+5)), "caller %d gets the value of its own key", i)
	}
	g.Expect(errs[9]).NotTo(HaveOccurred())
	g.Expect(vals[9]).To(BeZero(), "a key the run gave no value for")
	g.Expect(started.Load()).To(BeEquivalentTo(2), "ten callers, one more run")

	// A failed run fails its callers; idle again, the next caller starts
	// a run of its own.
	_, err := c.do(context.Background(), "b", op)
	g.Expect(err).To(MatchError("third run failed"))
	g.Expect(c.do(context.Background(), "b", op)).To(Equal(4))
	g.Expect(started.Load()).To(BeEquivalentTo(4))
	g.Expect(runs).To(HaveLen(2))
}
