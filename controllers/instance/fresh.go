package instance

import (
	"context"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
)

// freshness records, for each instance, the last resourceVersion this
// controller wrote or read live. A reconcile reads its instance from the
// cache when the cache holds that version (or the controller has not
// written the instance since it started) and live otherwise, so that a
// reconcile right after a status patch never acts on the status before
// it (an upgrade step, a configuration slot), while the reconciles the
// cache's own events bring, and the burst at start-up, cost no request.
type freshness struct {
	mu   sync.Mutex
	seen map[string]string
}

func newFreshness() *freshness {
	return &freshness{seen: map[string]string{}}
}

// note records the version of wi this controller wrote or read live.
func (f *freshness) note(wi *wmcov1.WindowsInstance) {
	if wi.ResourceVersion == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen[wi.Name] = wi.ResourceVersion
}

// forget drops what is recorded of the instance name (it is gone).
func (f *freshness) forget(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.seen, name)
}

// seenVersion is the version recorded for name, if any.
func (f *freshness) seenVersion(name string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rv, ok := f.seen[name]
	return rv, ok
}

// cacheAnswer says whether the cache's answer for an instance can stand
// without a live read: cached says the cache holds the instance (at
// cachedRV); seen says this controller recorded a version of it (seenRV).
// Resource versions are compared for equality only, as the API asks.
//
//   - Held at the recorded version, or held and never written: the cache
//     is as fresh as anything this controller did; the cache's events
//     bring every later change.
//   - Not held and never seen: the instance does not exist yet for this
//     controller; when the cache learns of it, its event brings a
//     reconcile.
//   - Otherwise (held at another version, or not held though seen): the
//     cache may lag behind this controller's own write, or the instance
//     was deleted; read live.
func cacheAnswer(cached bool, cachedRV string, seen bool, seenRV string) bool {
	return !seen || (cached && cachedRV == seenRV)
}

// readInstance reads the instance key into wi, from the cache when it is
// fresh enough (cacheAnswer), live otherwise.
func (r *Reconciler) readInstance(ctx context.Context, key client.ObjectKey, wi *wmcov1.WindowsInstance) error {
	err := r.Client.Get(ctx, key, wi)
	if err == nil || apierrors.IsNotFound(err) {
		seenRV, seen := r.fresh.seenVersion(key.Name)
		if cacheAnswer(err == nil, wi.ResourceVersion, seen, seenRV) {
			return err
		}
	}
	// Other errors (the cache not started, say): read live.
	// From an empty object: nothing of the cached copy may remain,
	// whatever the decoder does with what the answer leaves out.
	*wi = wmcov1.WindowsInstance{}
	err = r.APIReader.Get(ctx, key, wi)
	switch {
	case err == nil:
		r.fresh.note(wi)
	case apierrors.IsNotFound(err):
		r.fresh.forget(key.Name)
	}
	return err
}

// recordWrites makes the controller's client record every instance it
// writes (recordingClient) in a new freshness, which readInstance reads.
func (r *Reconciler) recordWrites() {
	r.fresh = newFreshness()
	r.Client = recordingClient{Client: r.Client, fresh: r.fresh}
}

// recordingClient is the controller's client: every WindowsInstance it
// writes is recorded in freshness with the version the API server
// answered.
type recordingClient struct {
	client.Client
	fresh *freshness
}

func (c recordingClient) record(obj client.Object, err error) error {
	if wi, ok := obj.(*wmcov1.WindowsInstance); ok && err == nil {
		c.fresh.note(wi)
	}
	return err
}

func (c recordingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	return c.record(obj, c.Client.Create(ctx, obj, opts...))
}

func (c recordingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	return c.record(obj, c.Client.Update(ctx, obj, opts...))
}

func (c recordingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	return c.record(obj, c.Client.Patch(ctx, obj, patch, opts...))
}

func (c recordingClient) Status() client.SubResourceWriter {
	return recordingStatus{SubResourceWriter: c.Client.Status(), c: c}
}

// recordingStatus records the instances whose status it writes.
type recordingStatus struct {
	client.SubResourceWriter
	c recordingClient
}

func (s recordingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	return s.c.record(obj, s.SubResourceWriter.Update(ctx, obj, opts...))
}

func (s recordingStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	return s.c.record(obj, s.SubResourceWriter.Patch(ctx, obj, patch, opts...))
}
