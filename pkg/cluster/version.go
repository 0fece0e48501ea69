package cluster

import (
	"context"
	"sync"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
)

// DefaultVersionPollInterval is how often the API server's version is
// read when VersionWatcher.Interval is not set.
const DefaultVersionPollInterval = time.Minute

// VersionWatcher knows the API server's version and notices when the
// control plane is upgraded: it reads the version through discovery every
// Interval. Nothing can be watched for it; a read of /version is cheap.
// It is a manager Runnable (run by every replica, leader or not).
type VersionWatcher struct {
	// Discovery reads /version.
	Discovery discovery.ServerVersionInterface
	// Interval between reads (default DefaultVersionPollInterval).
	Interval time.Duration

	mu        sync.RWMutex
	version   string
	listeners []func(old, cur string)
}

// NewVersionWatcher starts from the version read at start-up. dc should
// have a request timeout (see VersionClient): a request to an API server
// that went away must not hang the watcher.
func NewVersionWatcher(dc discovery.ServerVersionInterface, initial string, interval time.Duration) *VersionWatcher {
	return &VersionWatcher{Discovery: dc, Interval: interval, version: initial}
}

// Version is the API server's git version as last read, e.g. v1.37.2.
func (w *VersionWatcher) Version() string {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.version
}

// OnChange registers fn, called (from the watcher's goroutine) each time
// the version read differs from the one before. Register before Start.
func (w *VersionWatcher) OnChange(fn func(old, cur string)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.listeners = append(w.listeners, fn)
}

// Start reads the version every Interval until ctx ends. A failed read is
// logged and tried again at the next tick: the last known version stays.
func (w *VersionWatcher) Start(ctx context.Context) error {
	interval := w.Interval
	if interval <= 0 {
		interval = DefaultVersionPollInterval
	}
	log := ctrl.LoggerFrom(ctx).WithName("version-watcher")
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		v, err := w.Discovery.ServerVersion()
		if err != nil {
			if !failing {
				// Once per outage: an API server restart is routine.
				log.Info("Could not read the API server's version; trying again", "error", err.Error())
			}
			failing = true
			continue
		}
		failing = false
		w.set(ctx, v.GitVersion)
	}
}

func (w *VersionWatcher) set(ctx context.Context, cur string) {
	w.mu.Lock()
	old := w.version
	if old == cur {
		w.mu.Unlock()
		return
	}
	w.version = cur
	listeners := append([]func(string, string){}, w.listeners...)
	w.mu.Unlock()
	ctrl.LoggerFrom(ctx).Info("API server version changed", "from", old, "to", cur)
	for _, fn := range listeners {
		fn(old, cur)
	}
}

// NeedLeaderElection is false: every replica must know the version.
func (w *VersionWatcher) NeedLeaderElection() bool { return false }

// VersionTimeout bounds one read of the API server's version.
const VersionTimeout = 10 * time.Second

// VersionClient is a discovery client for the watcher: cfg with a
// timeout on every request.
func VersionClient(cfg *rest.Config) (discovery.ServerVersionInterface, error) {
	c := rest.CopyConfig(cfg)
	c.Timeout = VersionTimeout
	return discovery.NewDiscoveryClientForConfig(c)
}
