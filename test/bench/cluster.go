package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/test/localcluster"
	"github.com/openwmco/wmco/test/localenv"
	"github.com/openwmco/wmco/test/testpayload"
)

// plane is a control plane with the CRDs and the operator's namespace,
// for the phases that need no simulated hosts.
type plane struct {
	cluster    *localcluster.Cluster
	client     client.Client
	clientset  *kubernetes.Clientset
	payloadDir string
	dir        string
	stopped    bool
}

func startPlane(ctx context.Context, work, name string, opts localcluster.Options) (*plane, error) {
	logf("%s: starting the control plane (etcd, kube-apiserver, kube-controller-manager)", name)
	c, err := localcluster.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	p := &plane{cluster: c, dir: filepath.Join(work, name)}
	fail := func(err error) (*plane, error) {
		_ = c.Stop()
		return nil, err
	}
	if err := localcluster.InstallCRDs(ctx, c.Config, "config/crd/bases"); err != nil {
		return fail(err)
	}
	scheme, err := core.NewScheme()
	if err != nil {
		return fail(err)
	}
	if p.client, err = client.New(c.Config, client.Options{Scheme: scheme}); err != nil {
		return fail(err)
	}
	if p.clientset, err = kubernetes.NewForConfig(c.Config); err != nil {
		return fail(err)
	}
	if err := p.client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: localenv.Namespace}}); err != nil {
		return fail(err)
	}
	p.payloadDir = filepath.Join(p.dir, "payload")
	if _, err := testpayload.Write(p.payloadDir, testpayload.Options{}); err != nil {
		return fail(err)
	}
	return p, nil
}

// stop stops the control plane; once.
func (p *plane) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	if err := p.cluster.Stop(); err != nil {
		logf("stop control plane: %v", err)
	}
}

// kubernetesVersion asks the API server.
func kubernetesVersion(cs kubernetes.Interface) string {
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		return "unknown"
	}
	return v.GitVersion
}

// parallel runs f(0..n-1) on workers goroutines, retrying each call a few
// times on errors the API server may return under load, and logs progress
// every step items. It stops at the first error that persists.
func parallel(ctx context.Context, what string, workers, n, step int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		done     atomic.Int64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	t0 := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				var err error
				for attempt := range 6 {
					if err = f(ctx, i); err == nil || !retriable(err) || ctx.Err() != nil {
						break
					}
					time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
				}
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("%s #%d: %w", what, i, err); cancel() })
					continue
				}
				if d := done.Add(1); step > 0 && d%int64(step) == 0 {
					logf("  %s: %d/%d (%.0f/s)", what, d, n, float64(d)/time.Since(t0).Seconds())
				}
			}
		}()
	}
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func retriable(err error) bool {
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsConflict(err) ||
		errors.Is(err, context.DeadlineExceeded)
}
