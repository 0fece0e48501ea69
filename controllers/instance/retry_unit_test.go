package instance

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Failing instances do not space out the retries of the others: an
// instance's first retry comes after 5 ms however many others failed just
// before, and its own failures double its wait up to the cap.
func TestRetryLimiterIsPerInstance(t *testing.T) {
	l := retryLimiter()
	req := func(name string) reconcile.Request {
		return reconcile.Request{NamespacedName: types.NamespacedName{Name: name}}
	}
	for i := range 500 {
		for range 3 {
			l.When(req(fmt.Sprintf("dead-%d", i)))
		}
	}
	good := req("good")
	for i, want := range []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond} {
		if got := l.When(good); got != want {
			t.Fatalf("retry %d of the good instance after 1,500 failures of others: %s, want %s", i+1, got, want)
		}
	}
	for range 40 {
		l.When(good)
	}
	if got := l.When(good); got != 1000*time.Second {
		t.Fatalf("retry after 44 failures: %s, want the cap of 1000s", got)
	}
	l.Forget(good)
	if got := l.When(good); got != 5*time.Millisecond {
		t.Fatalf("retry after a success: %s, want 5ms", got)
	}
}

// A reconcile that could not reach its host raises the next wait to the
// floor, once; the base still counts the failure, so its own wait takes
// over when it is longer, and a success (Forget) clears both.
func TestFloorLimiterRaisesOnlyTheNextWait(t *testing.T) {
	l := newFloorLimiter(retryLimiter())
	dead := reconcile.Request{NamespacedName: types.NamespacedName{Name: "dead"}}
	other := reconcile.Request{NamespacedName: types.NamespacedName{Name: "other"}}
	steps := []struct {
		floor bool
		want  time.Duration
	}{
		{true, time.Second},             // base 5ms
		{false, 10 * time.Millisecond},  // the floor was for one retry
		{true, time.Second},             // base 20ms
		{true, time.Second},             // base 40ms
		{false, 80 * time.Millisecond},  // the failures were counted
		{true, time.Second},             // base 160ms
		{true, time.Second},             // base 320ms
		{true, time.Second},             // base 640ms
		{true, 1280 * time.Millisecond}, // the base's own wait is longer
	}
	for i, st := range steps {
		if st.floor {
			l.atLeast("dead", unreachableRetry)
		}
		if got := l.When(dead); got != st.want {
			t.Fatalf("retry %d: %s, want %s", i+1, got, st.want)
		}
	}
	if got := l.When(other); got != 5*time.Millisecond {
		t.Fatalf("another instance's first retry: %s, want 5ms", got)
	}
	l.atLeast("dead", unreachableRetry)
	l.Forget(dead)
	if got := l.When(dead); got != 5*time.Millisecond {
		t.Fatalf("retry after a success: %s, want 5ms (no floor, no failures)", got)
	}
}
