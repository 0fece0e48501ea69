// Package upgradewatch follows WindowsInstances and their Nodes during an
// upgrade, for tests and the benchmark: the peak of instances holding an
// upgrade slot at once, every moment a Node was not Ready, and which Nodes
// were cordoned. Its watches start with the current state and are opened
// again when the API server ends them (a restart included).
package upgradewatch

import (
	"context"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
)

// Result is what a Watch saw.
type Result struct {
	// Peak of instances holding an upgrade slot (a rolling, not in-place,
	// status.upgrade) at once.
	Peak int
	// NotReady lists each Node status seen with Ready not True, as
	// "<node>: <status> <message>".
	NotReady []string
	// NotReadyTotal sums the time Nodes were not Ready; NotReadyLongest is
	// the longest of one Node.
	NotReadyTotal, NotReadyLongest time.Duration
	// Cordoned names the Nodes seen unschedulable, sorted.
	Cordoned []string
}

// Watch follows instances and Nodes until Stop.
type Watch struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	only   map[string]bool // instance names; empty: all

	mu       sync.Mutex
	holding  map[string]bool
	res      Result
	since    map[string]time.Time // NotReady since, by Node
	downFor  map[string]time.Duration
	cordoned map[string]bool
}

// Start watches the instances named (all when none is) and their Nodes
// (found by the wmco.io/instance label).
func Start(ctx context.Context, c client.WithWatch, cs kubernetes.Interface, instances ...string) *Watch {
	ctx, cancel := context.WithCancel(ctx)
	w := &Watch{
		cancel: cancel, only: map[string]bool{}, holding: map[string]bool{},
		since: map[string]time.Time{}, downFor: map[string]time.Duration{}, cordoned: map[string]bool{},
	}
	for _, n := range instances {
		w.only[n] = true
	}
	w.wg.Add(2)
	go w.follow(ctx, func() (watch.Interface, error) { return c.Watch(ctx, &wmcov1.WindowsInstanceList{}) }, w.instance)
	go w.follow(ctx, func() (watch.Interface, error) {
		return cs.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{LabelSelector: wmcov1.LabelInstance})
	}, w.node)
	return w
}

// follow runs open's watch, and opens it again whenever it ends, until
// ctx does.
func (w *Watch) follow(ctx context.Context, open func() (watch.Interface, error), handle func(watch.Event)) {
	defer w.wg.Done()
	for ctx.Err() == nil {
		wi, err := open()
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond): // back off a failed watch call
			}
			continue
		}
		for ev := range wi.ResultChan() {
			handle(ev)
		}
		wi.Stop()
	}
}

func (w *Watch) watched(instance string) bool { return len(w.only) == 0 || w.only[instance] }

func (w *Watch) instance(ev watch.Event) {
	wi, ok := ev.Object.(*wmcov1.WindowsInstance)
	if !ok || !w.watched(wi.Name) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.holding[wi.Name] = ev.Type != watch.Deleted && wi.Status.Upgrade != nil && !wi.Status.Upgrade.InPlace
	n := 0
	for _, h := range w.holding {
		if h {
			n++
		}
	}
	w.res.Peak = max(w.res.Peak, n)
}

func (w *Watch) node(ev watch.Event) {
	node, ok := ev.Object.(*corev1.Node)
	if !ok || ev.Type == watch.Deleted || !w.watched(node.Labels[wmcov1.LabelInstance]) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	ready := false
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = c.Status == corev1.ConditionTrue
			if !ready {
				w.res.NotReady = append(w.res.NotReady, node.Name+": "+string(c.Status)+" "+c.Message)
			}
		}
	}
	if node.Spec.Unschedulable {
		w.cordoned[node.Name] = true
	}
	since, down := w.since[node.Name]
	switch {
	case !ready && !down:
		w.since[node.Name] = time.Now()
	case ready && down:
		w.downFor[node.Name] += time.Since(since)
		delete(w.since, node.Name)
	}
}

// Result is what the watch has seen so far.
func (w *Watch) Result() Result {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.res
	r.NotReady = slices.Clone(w.res.NotReady)
	for name, d := range w.downFor {
		if since, down := w.since[name]; down {
			d += time.Since(since)
		}
		r.NotReadyTotal += d
		r.NotReadyLongest = max(r.NotReadyLongest, d)
	}
	for name, since := range w.since {
		if _, counted := w.downFor[name]; !counted {
			d := time.Since(since)
			r.NotReadyTotal += d
			r.NotReadyLongest = max(r.NotReadyLongest, d)
		}
	}
	for name := range w.cordoned {
		r.Cordoned = append(r.Cordoned, name)
	}
	slices.Sort(r.Cordoned)
	return r
}

// Stop ends the watches and returns what they saw.
func (w *Watch) Stop() Result {
	w.cancel()
	w.wg.Wait()
	return w.Result()
}
