package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// AddCache creates a cache of a controller's own, limited by opts (its
// ByObject, DefaultNamespaces, ...), over the manager's connection,
// scheme and REST mapper, and adds it to mgr, which starts it with its
// other caches and waits for it to sync before it starts controllers. A
// read of an object the cache was not set up to hold fails rather than
// starting an informer the operator may not be allowed to run. what
// names the cache in errors.
func AddCache(mgr ctrl.Manager, what string, opts cache.Options) (cache.Cache, error) {
	opts.HTTPClient = mgr.GetHTTPClient()
	opts.Scheme = mgr.GetScheme()
	opts.Mapper = mgr.GetRESTMapper()
	opts.ReaderFailOnMissingInformer = true
	c, err := cache.New(mgr.GetConfig(), opts)
	if err != nil {
		return nil, fmt.Errorf("create cache for %s: %w", what, err)
	}
	if err := mgr.Add(ownCache{c}); err != nil {
		return nil, fmt.Errorf("add cache for %s: %w", what, err)
	}
	return c, nil
}

// ownCache is a controller's own cache. GetCache makes the manager start
// it with its other caches (before the controllers).
type ownCache struct{ cache.Cache }

func (c ownCache) GetCache() cache.Cache { return c.Cache }

// CacheLagRequeue is how soon a reconcile that ran into its cache's lag
// runs again (QuietCacheLag).
const CacheLagRequeue = time.Second

// CacheLag reports whether err is what a cache behind the API server
// brings: a conflict on update (the object changed since the cached copy)
// or AlreadyExists on create (the cache does not hold it yet). An
// aggregate is when all its errors are.
func CacheLag(err error) bool {
	if err == nil {
		return false
	}
	var agg kerrors.Aggregate
	if errors.As(err, &agg) {
		for _, e := range agg.Errors() {
			if !CacheLag(e) {
				return false
			}
		}
		return len(agg.Errors()) > 0
	}
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
}

// QuietCacheLag returns res and err, unless err is CacheLag: then a
// requeue after CacheLagRequeue, logged at V(1) instead of as a
// "Reconciler error" with a stack trace. Many hosts joining at once make
// such errors routine, and the next reconcile, with the cache caught up,
// resolves them; an admin reading the log should see only what needs a
// look.
func QuietCacheLag(ctx context.Context, res ctrl.Result, err error) (ctrl.Result, error) {
	if !CacheLag(err) {
		return res, err
	}
	ctrl.LoggerFrom(ctx).V(1).Info("The cache is behind the API server; reconciling again", "after", CacheLagRequeue, "error", err.Error())
	return ctrl.Result{RequeueAfter: CacheLagRequeue}, nil
}
