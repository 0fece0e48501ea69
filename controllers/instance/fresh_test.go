package instance_test

import (
	"context"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/test/ctrltest"
)

// laggingCache stands for the informer cache at a moment it has not
// caught up: it answers reads of instances with the versions the test
// gave it (catchUp, drop); writes go to the API server.
type laggingCache struct {
	client.Client
	mu   sync.Mutex
	held map[string]*wmcov1.WindowsInstance
}

func (c *laggingCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	wi, ok := obj.(*wmcov1.WindowsInstance)
	if !ok {
		return c.Client.Get(ctx, key, obj, opts...)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.held[key.Name]
	if h == nil {
		return apierrors.NewNotFound(wmcov1.GroupVersion.WithResource("windowsinstances").GroupResource(), key.Name)
	}
	h.DeepCopyInto(wi)
	return nil
}

// catchUp makes the cache hold the instance's current version.
func (c *laggingCache) catchUp(g Gomega, name string) {
	wi := &wmcov1.WindowsInstance{}
	g.Expect(ctrltest.Client.Get(context.Background(), client.ObjectKey{Name: name}, wi)).To(Succeed())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held[name] = wi
}

// drop makes the cache forget the instance (its deletion seen).
func (c *laggingCache) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.held, name)
}

// A reconcile reads its instance from the cache unless the cache may lag
// behind what the controller itself wrote: right after a status patch or
// a metadata patch the read is live and sees the write; once the cache
// holds that version, or for an instance the controller never wrote, no
// request is made.
func TestInstanceReadLiveOnlyWhenTheCacheMayLagBehindTheControllersWrite(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	cache := &laggingCache{Client: ctrltest.Client, held: map[string]*wmcov1.WindowsInstance{}}
	live := &ctrltest.CountingReader{Reader: ctrltest.Client}
	r := instance.NewInstanceReader(cache, live)
	key := client.ObjectKey{Name: "fresh-read"}
	wi := &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: key.Name}, Spec: wmcov1.WindowsInstanceSpec{Address: "127.0.0.40", Username: "Administrator"}}
	g.Expect(ctrltest.Client.Create(ctx, wi)).To(Succeed())
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), wi) })

	// Not in the cache yet, never seen: not found, no request (the
	// cache's event for it brings a reconcile).
	got := &wmcov1.WindowsInstance{}
	g.Expect(apierrors.IsNotFound(r.Read(ctx, key, got))).To(BeTrue())
	g.Expect(live.Gets.Load()).To(BeZero())

	// Held, never written: from the cache.
	cache.catchUp(g, key.Name)
	g.Expect(r.Read(ctx, key, got)).To(Succeed())
	g.Expect(live.Gets.Load()).To(BeZero())

	// The controller patches the status; the cache still holds the
	// version before: read live, the patch is seen.
	base := got.DeepCopy()
	got.Status.AuthorizedKeyFingerprint = "SHA256:fresh"
	g.Expect(r.Writer.Status().Patch(ctx, got, client.MergeFrom(base))).To(Succeed())
	got = &wmcov1.WindowsInstance{}
	g.Expect(r.Read(ctx, key, got)).To(Succeed())
	g.Expect(got.Status.AuthorizedKeyFingerprint).To(Equal("SHA256:fresh"))
	g.Expect(live.Gets.Load()).To(BeEquivalentTo(1))

	// The same for a patch of the object (a finalizer, a label).
	base = got.DeepCopy()
	got.Labels = map[string]string{"wmco.io/test": "fresh"}
	g.Expect(r.Writer.Patch(ctx, got, client.MergeFrom(base))).To(Succeed())
	got = &wmcov1.WindowsInstance{}
	g.Expect(r.Read(ctx, key, got)).To(Succeed())
	g.Expect(got.Labels).To(HaveKeyWithValue("wmco.io/test", "fresh"))
	g.Expect(live.Gets.Load()).To(BeEquivalentTo(2))

	// The cache has caught up: from the cache again.
	cache.catchUp(g, key.Name)
	got = &wmcov1.WindowsInstance{}
	g.Expect(r.Read(ctx, key, got)).To(Succeed())
	g.Expect(got.Labels).To(HaveKeyWithValue("wmco.io/test", "fresh"))
	g.Expect(live.Gets.Load()).To(BeEquivalentTo(2))

	// Another writer removes the label while the cache still holds it,
	// and the controller writes the status: the live read keeps nothing
	// of the cached copy.
	g.Expect(ctrltest.UpdateInstance(ctx, key.Name, func(wi *wmcov1.WindowsInstance) {
		wi.Labels, wi.Spec.Address = nil, "127.0.0.41"
	})).To(Succeed())
	base = got.DeepCopy()
	got.Status.AuthorizedKeyFingerprint = "SHA256:again"
	g.Expect(r.Writer.Status().Patch(ctx, got, client.MergeFrom(base))).To(Succeed())
	got = &wmcov1.WindowsInstance{}
	g.Expect(r.Read(ctx, key, got)).To(Succeed())
	g.Expect(got.Labels).NotTo(HaveKey("wmco.io/test"))
	g.Expect(got.Spec.Address).To(Equal("127.0.0.41"))
	g.Expect(live.Gets.Load()).To(BeEquivalentTo(3))

	// Another writer's change, which the cache holds: another version
	// than the controller's last, read live once, then from the cache.
	g.Expect(ctrltest.UpdateInstance(ctx, key.Name, func(wi *wmcov1.WindowsInstance) { wi.Spec.Address = "127.0.0.42" })).To(Succeed())
	cache.catchUp(g, key.Name)
	g.Expect(r.Read(ctx, key, got)).To(Succeed())
	g.Expect(got.Spec.Address).To(Equal("127.0.0.42"))
	g.Expect(live.Gets.Load()).To(BeEquivalentTo(4))
	g.Expect(r.Read(ctx, key, got)).To(Succeed())
	g.Expect(live.Gets.Load()).To(BeEquivalentTo(4))

	// Deleted, and the cache has seen it go: read live once (the
	// controller had seen it), then not found without a request.
	g.Expect(ctrltest.Client.Delete(ctx, wi)).To(Succeed())
	cache.drop(key.Name)
	g.Expect(apierrors.IsNotFound(r.Read(ctx, key, got))).To(BeTrue())
	g.Expect(live.Gets.Load()).To(BeEquivalentTo(5))
	g.Expect(apierrors.IsNotFound(r.Read(ctx, key, got))).To(BeTrue())
	g.Expect(live.Gets.Load()).To(BeEquivalentTo(5))
}
