// Package cluster tells which kind of cluster the operator runs in and
// which optional APIs it serves.
package cluster

import (
	"context"
	"fmt"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Platform is the kind of cluster.
type Platform string

const (
	// OpenShift clusters serve config.openshift.io.
	OpenShift Platform = "OpenShift"
	// Kubernetes is any other conformant cluster (kind, kubeadm, ...).
	Kubernetes Platform = "Kubernetes"
)

// Info is what the operator needs to know about the cluster at start-up.
type Info struct {
	Platform Platform
	// MachineAPI is true when machine.openshift.io/v1beta1 Machines are
	// served, so the Machine controller can run.
	MachineAPI bool
	// Version is the API server's git version, e.g. v1.37.2.
	Version string
}

// Detect asks the API server's discovery endpoints.
func Detect(dc discovery.DiscoveryInterface) (Info, error) {
	v, err := dc.ServerVersion()
	if err != nil {
		return Info{}, fmt.Errorf("read server version: %w", err)
	}
	info := Info{Platform: Kubernetes, Version: v.GitVersion}
	groups, err := dc.ServerGroups()
	if err != nil {
		return Info{}, fmt.Errorf("list API groups: %w", err)
	}
	for _, g := range groups.Groups {
		if g.Name == "config.openshift.io" {
			info.Platform = OpenShift
		}
	}
	info.MachineAPI, err = serves(dc, "machine.openshift.io/v1beta1", "machines")
	if err != nil {
		return Info{}, err
	}
	return info, nil
}

// DetectRetrying is Detect, tried again while the API server does not
// answer (it restarts, or the operator starts before it is up), for up to
// within: a Deployment's restarts would otherwise back off for minutes.
// A refusal (401, 403) is not retried. onRetry, when set, hears of each
// failure and the wait before the next try.
func DetectRetrying(ctx context.Context, dc discovery.DiscoveryInterface, within time.Duration, onRetry func(err error, wait time.Duration)) (Info, error) {
	return retryDetect(ctx, func() (Info, error) { return Detect(dc) }, within, onRetry)
}

// detectFirstWait and detectMaxWait bound the waits between tries.
const (
	detectFirstWait = 500 * time.Millisecond
	detectMaxWait   = 8 * time.Second
)

func retryDetect(ctx context.Context, detect func() (Info, error), within time.Duration, onRetry func(err error, wait time.Duration)) (Info, error) {
	deadline := time.Now().Add(within)
	wait := detectFirstWait
	for {
		info, err := detect()
		if err == nil || apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) {
			return info, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return Info{}, fmt.Errorf("the API server did not answer within %s: %w", within, err)
		}
		wait = min(wait, left)
		if onRetry != nil {
			onRetry(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return Info{}, fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, detectMaxWait)
	}
}

// serves reports whether groupVersion has the resource.
func serves(dc discovery.DiscoveryInterface, groupVersion, resource string) (bool, error) {
	list, err := dc.ServerResourcesForGroupVersion(groupVersion)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discover %s: %w", groupVersion, err)
	}
	for _, r := range list.APIResources {
		if r.Name == resource {
			return true, nil
		}
	}
	return false, nil
}

// InfrastructurePlatform returns the platform type in the status of the
// cluster's Infrastructure object (config.openshift.io/v1, named cluster):
// AWS, Azure, VSphere, None, ... It is "" where the object or its kind does
// not exist (plain Kubernetes); callers treat that as None.
func InfrastructurePlatform(ctx context.Context, c client.Reader) (configv1.PlatformType, error) {
	infra := &configv1.Infrastructure{}
	err := c.Get(ctx, client.ObjectKey{Name: "cluster"}, infra)
	switch {
	case apierrors.IsNotFound(err) || meta.IsNoMatchError(err):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read the Infrastructure object cluster: %w", err)
	}
	if s := infra.Status.PlatformStatus; s != nil && s.Type != "" {
		return s.Type, nil
	}
	//nolint:staticcheck // status.platform is deprecated for platformStatus.type, which old clusters may lack.
	return infra.Status.Platform, nil
}
