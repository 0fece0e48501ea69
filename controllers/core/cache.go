package core

import (
	"fmt"

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
