/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package payload

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/version"
)

// MaxKubeletMinorsBehind is how many minor versions a kubelet (and
// kube-proxy) may lag the API server under Kubernetes' version-skew
// policy. A kubelet may never be newer than the API server.
const MaxKubeletMinorsBehind = 3

// SkewError says that no payload's Kubernetes version may run against the
// API server's. It names both, so an admin knows which payload to add.
type SkewError struct {
	// Server is the API server's version.
	Server string
	// Available are the payloads' Kubernetes versions, highest first.
	Available []string
}

func (e *SkewError) Error() string {
	if len(e.Available) == 0 {
		return fmt.Sprintf("no Windows payload fits the API server %s", e.Server)
	}
	return fmt.Sprintf("no Windows payload fits the API server %s: a kubelet may be at most %d minor versions older than the API server and never newer; available: %s",
		e.Server, MaxKubeletMinorsBehind, strings.Join(e.Available, ", "))
}

// CheckSkew reports whether a kubelet and kube-proxy at kubelet may run
// against an API server at server: same major version, a minor version
// no newer than the server's and at most MaxKubeletMinorsBehind older.
// Patch versions do not matter, as the policy speaks of minor versions.
func CheckSkew(kubelet, server string) error {
	k, err := version.ParseSemantic(kubelet)
	if err != nil {
		return fmt.Errorf("payload Kubernetes version %q: %w", kubelet, err)
	}
	s, err := version.ParseGeneric(server)
	if err != nil {
		return fmt.Errorf("API server version %q: %w", server, err)
	}
	switch {
	case k.Major() != s.Major():
		return fmt.Errorf("kubelet %s and API server %s differ in major version", kubelet, server)
	case k.Minor() > s.Minor():
		return fmt.Errorf("kubelet %s is newer than the API server %s", kubelet, server)
	case s.Minor()-k.Minor() > MaxKubeletMinorsBehind:
		return fmt.Errorf("kubelet %s is more than %d minor versions older than the API server %s", kubelet, MaxKubeletMinorsBehind, server)
	}
	return nil
}

// SelectVersion returns the first of versions (Kubernetes versions of the
// available payloads, highest first, as [FindDir] lists them) that may run
// against an API server at server, or a *SkewError.
func SelectVersion(versions []string, server string) (string, error) {
	for _, v := range versions {
		if CheckSkew(v, server) == nil {
			return v, nil
		}
	}
	return "", &SkewError{Server: server, Available: versions}
}
