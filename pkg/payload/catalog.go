/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package payload

import (
	"fmt"
	"path/filepath"
	"slices"

	"k8s.io/apimachinery/pkg/util/version"
)

// Entry is one payload of a catalog: its verified manifest and the
// directory holding its files.
type Entry struct {
	Dir      string
	Manifest *Manifest
}

// Catalog is every payload the operator ships. Which one hosts run is
// chosen by the API server's version ([Catalog.Select]); a host that
// runs another one is found by [Catalog.Get], so that it can be kept
// as it is while it waits for its upgrade.
type Catalog struct {
	// entries, highest Kubernetes version first.
	entries []Entry
}

// NewCatalog is a catalog of the given payloads, in any order.
func NewCatalog(entries ...Entry) *Catalog {
	c := &Catalog{entries: slices.Clone(entries)}
	slices.SortStableFunc(c.entries, func(a, b Entry) int { return compareKube(b.Manifest.KubernetesVersion, a.Manifest.KubernetesVersion) })
	return c
}

// LoadCatalog loads and verifies the payload in dir (dir/manifest.json),
// or every payload in dir's subdirectories named by Kubernetes version
// (dir/v1.37.2/manifest.json, as make payload writes them). A payload
// that does not verify is an error: the operator ships nothing broken.
func LoadCatalog(dir string) (*Catalog, error) {
	chosen, versions, err := FindDir(dir)
	if err != nil {
		return nil, err
	}
	dirs := []string{chosen}
	if len(versions) > 0 {
		dirs = dirs[:0]
		for _, v := range versions {
			dirs = append(dirs, filepath.Join(dir, v))
		}
	}
	var entries []Entry
	for _, d := range dirs {
		m, err := Load(d)
		if err != nil {
			return nil, err
		}
		entries = append(entries, Entry{Dir: d, Manifest: m})
	}
	return NewCatalog(entries...), nil
}

// Entries are the catalog's payloads, highest Kubernetes version first.
func (c *Catalog) Entries() []Entry { return slices.Clone(c.entries) }

// KubernetesVersions of the catalog's payloads, highest first.
func (c *Catalog) KubernetesVersions() []string {
	out := make([]string, 0, len(c.entries))
	for _, e := range c.entries {
		out = append(out, e.Manifest.KubernetesVersion)
	}
	return out
}

// Select is the newest payload whose kubelet the version-skew policy
// allows against the API server at server (see [CheckSkew]); a
// *SkewError naming every version when none does.
func (c *Catalog) Select(server string) (Entry, error) {
	for _, e := range c.entries {
		if CheckSkew(e.Manifest.KubernetesVersion, server) == nil {
			return e, nil
		}
	}
	return Entry{}, &SkewError{Server: server, Available: c.KubernetesVersions()}
}

// Get is the payload of the given payload version (Manifest.Version).
func (c *Catalog) Get(payloadVersion string) (Entry, bool) {
	for _, e := range c.entries {
		if e.Manifest.Version == payloadVersion {
			return e, true
		}
	}
	return Entry{}, false
}

// String names the payload for logs: its version and directory.
func (e Entry) String() string {
	if e.Manifest == nil {
		return "<none>"
	}
	return fmt.Sprintf("%s (%s)", e.Manifest.Version, e.Dir)
}

// compareKube orders Kubernetes versions; unparsable ones sort lowest.
func compareKube(a, b string) int {
	va, errA := version.ParseSemantic(a)
	vb, errB := version.ParseSemantic(b)
	switch {
	case errA != nil && errB != nil:
		return 0
	case errA != nil:
		return -1
	case errB != nil:
		return 1
	}
	switch {
	case va.LessThan(vb):
		return -1
	case vb.LessThan(va):
		return 1
	}
	return 0
}
